// Native REST API under /v1 (stub until implemented).
import type { FastifyPluginAsync } from 'fastify';
import type { ControlPlaneContext } from '../../context.js';

export const nativeApi: FastifyPluginAsync<{ ctx: ControlPlaneContext }> = async () => {};
