import { randomBytes, randomInt } from 'node:crypto';

const BASE36 = '0123456789abcdefghijklmnopqrstuvwxyz';

/** Capsule ids: `cl-` + 16 lower-case base36 characters. */
export function newCapsuleId(): string {
  let s = 'cl-';
  for (let i = 0; i < 16; i++) s += BASE36[randomInt(36)];
  return s;
}

export const CAPSULE_ID_RE = /^cl-[0-9a-z]{4,32}$/;

/** Token envd requires on every request from outside once set (X-Access-Token). */
export function newAccessToken(): string {
  return randomBytes(24).toString('base64url');
}
