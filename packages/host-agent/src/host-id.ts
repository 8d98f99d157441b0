import { randomInt } from 'node:crypto';

/** Host ids: `host-` + 12 lower-case base36 characters. */
export function newHostId(): string {
  let s = 'host-';
  for (let i = 0; i < 12; i++) s += '0123456789abcdefghijklmnopqrstuvwxyz'[randomInt(36)];
  return s;
}
