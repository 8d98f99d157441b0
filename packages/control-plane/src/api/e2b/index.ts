// E2B-compatible API (stub until implemented).
import type { FastifyPluginAsync } from 'fastify';
import type { ControlPlaneContext } from '../../context.js';

export const e2bApi: FastifyPluginAsync<{ ctx: ControlPlaneContext }> = async () => {};
