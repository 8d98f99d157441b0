// Connect clients to the host agents, one HTTP/2 session per host (h2c, or h2 over TLS pinned to
// the certificate the agent registered), each presenting the host's agent secret (Authorization: Bearer). This pool carries RPCs only; the sandbox proxy has
// its own HTTP/1.1 transport so browser traffic never competes with PTY and exec streams for the
// same connection's flow control. An agent running in this process (`wrenn up`) is called directly
// (in-process-client.ts, no credential needed) unless WRENN_LOCAL_AGENT_RPC=http. Either way calls
// fail with domain errors (domain-errors-client.ts), not ConnectErrors.
// The pool owns each host's HTTP/2 session: a client it forgets (a host that failed a call) or
// replaces (a new address, secret or certificate) has its connection closed at once, rather than
// left open, pinging the agent, until its idle timeout: an agent that stops owes no replica a
// connection.
import type { ServiceImpl } from '@connectrpc/connect';
import { Http2SessionManager } from '@connectrpc/connect-node';
import { type AgentClient, createAgentClient, pinnedTls } from '@wrenn/host-agent/client';
import { HostAgentService } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import { withDomainErrors } from './domain-errors-client.js';
import { createInProcessClient } from './in-process-client.js';

export type { AgentClient };

/** How a host's agent is reached: a hosts row has these. */
export interface AgentEndpoint {
  id: string;
  /** Base URL, e.g. http://10.0.0.5:5007. */
  address: string;
  /** What the agent demands; null for a host registered before agents required one (its calls get 401). */
  agentSecret: string | null;
  /** The certificate an https:// agent registered (PEM): the only one its connections accept. */
  agentTlsCert?: string | null;
}

export class AgentPool {
  private readonly clients = new Map<string, { key: string; client: AgentClient; session: Http2SessionManager }>();
  private readonly inProcess = new Map<string, AgentClient>();

  /** Calls to this host go straight to its service implementation, which runs in this process. */
  setInProcess(hostId: string, impl: ServiceImpl<typeof HostAgentService>): void {
    if (process.env.WRENN_LOCAL_AGENT_RPC === 'http') return;
    this.inProcess.set(hostId, withDomainErrors(createInProcessClient(HostAgentService, impl)));
  }

  /** The client for a host's agent, created on first use (and again when its address, secret or certificate changed). */
  client(host: AgentEndpoint): AgentClient {
    const local = this.inProcess.get(host.id);
    if (local) return local;
    const key = `${host.address} ${host.agentSecret ?? ''} ${host.agentTlsCert ?? ''}`;
    const have = this.clients.get(host.id);
    if (have && have.key === key) return have.client;
    have?.session.abort();
    const pin = host.agentTlsCert && host.address.startsWith('https:') ? pinnedTls(host.agentTlsCert) : undefined;
    const session = new Http2SessionManager(
      host.address,
      // Keep the HTTP/2 session warm; a new session costs a round trip on the create path.
      { pingIntervalMs: 30_000, idleConnectionTimeoutMs: 15 * 60_000 },
      pin ?? {},
    );
    const client = withDomainErrors(
      createAgentClient(
        host.address,
        host.agentSecret ?? '',
        { httpVersion: '2', useBinaryFormat: true, sessionManager: session },
        host.agentTlsCert,
      ),
    );
    this.clients.set(host.id, { key, client, session });
    return client;
  }

  /** Drops the host's client and closes its connection (calls under way on it fail). */
  forget(hostId: string): void {
    this.clients.get(hostId)?.session.abort();
    this.clients.delete(hostId);
  }

  /** Closes every connection to an agent (the control plane stops). */
  close(): void {
    for (const id of [...this.clients.keys()]) this.forget(id);
  }
}
