// The control plane's side of the agent's Connect edge: a client whose calls fail with domain
// errors (@wrenn/protocol, from the Connect code by one shared table) instead of ConnectErrors, so
// services tell a missing capsule or a full host apart by class, never by reading the message.
import type { Client } from '@connectrpc/connect';
import { asDomainError } from '@wrenn/protocol';
import type { HostAgentService } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';

type AgentClient = Client<typeof HostAgentService>;

async function* mapStream<T>(it: AsyncIterable<T>): AsyncGenerator<T> {
  try {
    yield* it;
  } catch (err) {
    throw asDomainError(err);
  }
}

/** Wraps every method: unary results reject with domain errors; streams throw them while iterating. */
export function withDomainErrors(client: AgentClient): AgentClient {
  const out: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(client as Record<string, unknown>)) {
    if (typeof fn !== 'function') continue;
    out[name] = (...args: unknown[]) => {
      const r = (fn as (...a: unknown[]) => unknown)(...args);
      if (r instanceof Promise)
        return r.catch((err: unknown) => {
          throw asDomainError(err);
        });
      if (r && typeof r === 'object' && Symbol.asyncIterator in r) return mapStream(r as AsyncIterable<unknown>);
      return r;
    };
  }
  return out as AgentClient;
}
