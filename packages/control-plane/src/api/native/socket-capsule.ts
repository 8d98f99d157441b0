// The capsule a WebSocket route works on, looked up (team-scoped, running) in a preHandler before
// the upgrade, so a wrong id or state is an ordinary HTTP 404/409 the client can read.
import type { FastifyRequest } from 'fastify';
import type { AgentClient } from '../../agents/pool.js';
import type { ControlPlaneContext } from '../../context.js';
import { type Capsule, capsuleAgent } from '../../services/capsules.js';
import { teamOf } from '../auth.js';

const loaded = new WeakMap<FastifyRequest, { capsule: Capsule; agent: AgentClient }>();

/** preHandler for `/capsules/:id/...` sockets: the capsule must be running. */
export const loadRunningCapsule =
  (ctx: ControlPlaneContext) =>
  async (req: FastifyRequest): Promise<void> => {
    const { id } = req.params as { id: string };
    loaded.set(req, await capsuleAgent(ctx, teamOf(req).id, id, ['running'], 'attach to'));
  };

/** What loadRunningCapsule found for this request. */
export function socketCapsule(req: FastifyRequest): { capsule: Capsule; agent: AgentClient } {
  const found = loaded.get(req);
  if (!found) throw new Error('socket route registered without loadRunningCapsule as its preHandler');
  return found;
}
