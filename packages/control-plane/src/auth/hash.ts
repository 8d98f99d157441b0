import { createHash } from 'node:crypto';

/** sha256 hex of a secret: what the database stores instead of API keys and host tokens. */
export const sha256Hex = (secret: string): string => createHash('sha256').update(secret, 'utf8').digest('hex');
