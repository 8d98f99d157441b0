// Connect clients to the host agents, one HTTP/2 (h2c) session per host. This pool carries RPCs
// only; the sandbox proxy has its own HTTP/1.1 transport so browser traffic never competes with
// PTY and exec streams for the same connection's flow control.
import { createClient, type Client } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { HostAgentService } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';

export type AgentClient = Client<typeof HostAgentService>;

export class AgentPool {
  private readonly clients = new Map<string, { address: string; client: AgentClient }>();

  /** The client for a host's agent at `address` (http://host:port), created on first use. */
  client(hostId: string, address: string): AgentClient {
    const have = this.clients.get(hostId);
    if (have && have.address === address) return have.client;
    const transport = createConnectTransport({
      baseUrl: address,
      httpVersion: '2',
      useBinaryFormat: true,
      // Keep the HTTP/2 session warm; a new session costs a round trip on the create path.
      pingIntervalMs: 30_000,
      idleConnectionTimeoutMs: 15 * 60_000,
    });
    const client = createClient(HostAgentService, transport);
    this.clients.set(hostId, { address, client });
    return client;
  }

  forget(hostId: string): void {
    this.clients.delete(hostId);
  }
}
