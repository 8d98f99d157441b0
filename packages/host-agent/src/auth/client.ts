// The one way to make a Connect client of a host agent over the network: it presents the agent's
// secret on every call (request-auth.ts) and, for an agent that serves TLS, accepts only the
// certificate that agent registered (pinned-tls.ts). The control plane, tests and benchmarks all use it.
import { type Client, Code, ConnectError, createClient, type Interceptor } from '@connectrpc/connect';
import { type ConnectTransportOptions, createConnectTransport } from '@connectrpc/connect-node';
import { HostAgentService } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import { agentTlsFailure, pinnedTls } from './pinned-tls.js';

export type AgentClient = Client<typeof HostAgentService>;

export function bearer(secret: string): Interceptor {
  const value = `Bearer ${secret}`;
  return (next) => (req) => {
    req.header.set('authorization', value);
    return next(req);
  };
}

/** Rewrites a failed handshake with the wrong certificate into a sentence that says what to do. */
function certificateErrors(address: string): Interceptor {
  return (next) => async (req) => {
    try {
      return await next(req);
    } catch (err) {
      const why = agentTlsFailure(err, address);
      if (why) throw new ConnectError(why, Code.Unavailable, undefined, undefined, err);
      throw err;
    }
  };
}

/** Transport options without the base URL (HTTP/2 unless `httpVersion: '1.1'` is given). */
export type AgentTransportOptions = DistributiveOmit<ConnectTransportOptions, 'baseUrl'>;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/**
 * A client of the agent at `baseUrl`. For an https:// agent, `tlsCert` is the certificate it
 * registered (PEM): the only one accepted. Without it an https:// agent is verified the ordinary
 * way (the system's CAs and NODE_EXTRA_CA_CERTS, and its name).
 */
export function createAgentClient(
  baseUrl: string,
  secret: string,
  opts: AgentTransportOptions = { httpVersion: '2' },
  tlsCert?: string | null,
): AgentClient {
  const pin = tlsCert && baseUrl.startsWith('https:') ? pinnedTls(tlsCert) : undefined;
  const transport = createConnectTransport({
    ...opts,
    ...(pin
      ? {
          nodeOptions: {
            ...(opts.nodeOptions ?? {}),
            ...pin,
            // HTTP/1.1 calls (registration's probe) dial afresh rather than share the global pool.
            ...(opts.httpVersion === '1.1' ? { agent: false } : {}),
          },
        }
      : {}),
    baseUrl,
    interceptors: [certificateErrors(baseUrl), bearer(secret), ...(opts.interceptors ?? [])],
  } as ConnectTransportOptions);
  return createClient(HostAgentService, transport);
}
