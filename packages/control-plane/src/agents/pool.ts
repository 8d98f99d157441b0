// Connect clients to the host agents, one HTTP/2 (h2c) session per host. This pool carries RPCs
// only; the sandbox proxy has its own HTTP/1.1 transport so browser traffic never competes with
// PTY and exec streams for the same connection's flow control. An agent running in this process
// (`wrenn up`) is called directly (in-process-client.ts) unless WRENN_LOCAL_AGENT_RPC=http.
import { createClient, type Client, type ServiceImpl } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { HostAgentService } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import { createInProcessClient } from './in-process-client.js';

export type AgentClient = Client<typeof HostAgentService>;

export class AgentPool {
  private readonly clients = new Map<string, { address: string; client: AgentClient }>();
  private readonly inProcess = new Map<string, AgentClient>();

  /** Calls to this host go straight to its service implementation, which runs in this process. */
  setInProcess(hostId: string, impl: ServiceImpl<typeof HostAgentService>): void {
    if (process.env.WRENN_LOCAL_AGENT_RPC === 'http') return;
    this.inProcess.set(hostId, createInProcessClient(HostAgentService, impl));
  }

  /** The client for a host's agent at `address` (http://host:port), created on first use. */
  client(hostId: string, address: string): AgentClient {
    const local = this.inProcess.get(hostId);
    if (local) return local;
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
