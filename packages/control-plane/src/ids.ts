// Identifiers used across the control plane: a fixed prefix plus lower-case base36 from a CSPRNG.
import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';
// 252 = 36 * 7: bytes at or above it are dropped so every character is equally likely.
const UNBIASED_LIMIT = 252;

/** `length` random characters from [0-9a-z]. */
export function randomBase36(length: number): string {
  if (!Number.isInteger(length) || length <= 0)
    throw new RangeError(`randomBase36: length must be a positive integer, got ${length}`);
  let out = '';
  while (out.length < length) {
    for (const b of randomBytes(length * 2)) {
      if (b < UNBIASED_LIMIT) out += ALPHABET[b % 36];
      if (out.length === length) break;
    }
  }
  return out;
}

export const ID_PREFIX = {
  capsule: 'cl-',
  host: 'host-',
  team: 'team-',
  apiKey: 'key-',
  template: 'tpl-',
  build: 'bld-',
  hostToken: 'htk-',
} as const;

const ID_LENGTH = 16;

export const newCapsuleId = (): string => ID_PREFIX.capsule + randomBase36(ID_LENGTH);
export const newHostId = (): string => ID_PREFIX.host + randomBase36(ID_LENGTH);
export const newTeamId = (): string => ID_PREFIX.team + randomBase36(ID_LENGTH);
export const newApiKeyId = (): string => ID_PREFIX.apiKey + randomBase36(ID_LENGTH);
export const newTemplateId = (): string => ID_PREFIX.template + randomBase36(ID_LENGTH);
export const newBuildId = (): string => ID_PREFIX.build + randomBase36(ID_LENGTH);
export const newHostTokenId = (): string => ID_PREFIX.hostToken + randomBase36(ID_LENGTH);

// Accepts any length 1..64 so ids created by other versions (or given by users) stay valid.
const capsuleIdPattern = /^cl-[0-9a-z]{1,64}$/;
const hostIdPattern = /^host-[0-9a-z]{1,64}$/;

export const isCapsuleId = (s: unknown): s is string => typeof s === 'string' && capsuleIdPattern.test(s);
export const isHostId = (s: unknown): s is string => typeof s === 'string' && hostIdPattern.test(s);
