// The Idempotency-Key request header of creates (services/capsules/create-once.ts): one value, or
// none. Sent by clients that retry, or added by the load balancer so it may replay the request.
import { InvalidArgumentError } from '@wrenn/protocol';
import type { FastifyRequest } from 'fastify';

export const IDEMPOTENCY_KEY_HEADER = 'idempotency-key';

export function idempotencyKeyOf(req: FastifyRequest): string | undefined {
  const v = req.headers[IDEMPOTENCY_KEY_HEADER];
  if (Array.isArray(v)) throw new InvalidArgumentError('send one Idempotency-Key header, not several');
  return v;
}
