// The one way to make a Connect client of a host agent over the network: it presents the agent's
// secret on every call (request-auth.ts). The control plane, tests and benchmarks all use it.
import { type Client, createClient, type Interceptor } from '@connectrpc/connect';
import { type ConnectTransportOptions, createConnectTransport } from '@connectrpc/connect-node';
import { HostAgentService } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';

export type AgentClient = Client<typeof HostAgentService>;

export function bearer(secret: string): Interceptor {
  const value = `Bearer ${secret}`;
  return (next) => (req) => {
    req.header.set('authorization', value);
    return next(req);
  };
}

/** Transport options without the base URL (HTTP/2 unless `httpVersion: '1.1'` is given). */
export type AgentTransportOptions = DistributiveOmit<ConnectTransportOptions, 'baseUrl'>;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export function createAgentClient(
  baseUrl: string,
  secret: string,
  opts: AgentTransportOptions = { httpVersion: '2' },
): AgentClient {
  const transport = createConnectTransport({
    ...opts,
    baseUrl,
    interceptors: [bearer(secret), ...(opts.interceptors ?? [])],
  });
  return createClient(HostAgentService, transport);
}
