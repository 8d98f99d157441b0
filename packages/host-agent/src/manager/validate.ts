// Validation of capsule requests: every field from outside is checked with a message naming it.
import { cpus, totalmem } from 'node:os';
import { InvalidArgumentError } from './errors.js';

export const TEMPLATE_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const ENV_KEY_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function checkTemplateName(name: string): void {
  if (!TEMPLATE_NAME_RE.test(name)) {
    throw new InvalidArgumentError(
      `template name "${name}" is invalid: use 1-63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit`,
    );
  }
}

export function checkRange(field: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(`${field} must be a whole number from ${min} to ${max}, got ${value}`);
  }
}

export function hostLimits(): { maxVcpus: number; maxMemoryMb: number } {
  return { maxVcpus: Math.max(1, cpus().length), maxMemoryMb: Math.floor(totalmem() / (1 << 20)) };
}

export function checkEnvs(field: string, envs: Record<string, string>): void {
  for (const [k, v] of Object.entries(envs)) {
    if (!ENV_KEY_RE.test(k))
      throw new InvalidArgumentError(`${field} key "${k}" is not a valid environment variable name`);
    if (v.includes('\0')) throw new InvalidArgumentError(`${field}.${k} contains a NUL byte`);
  }
}

export function checkMetadata(metadata: Record<string, string>): void {
  const entries = Object.entries(metadata);
  if (entries.length > 64) throw new InvalidArgumentError('metadata may hold at most 64 keys');
  for (const [k, v] of entries) {
    if (k.length === 0 || k.length > 128)
      throw new InvalidArgumentError(`metadata key "${k}" must be 1-128 characters`);
    if (v.length > 1024) throw new InvalidArgumentError(`metadata.${k} is longer than 1024 characters`);
  }
}

const USER_NAME_RE = /^[a-z0-9_][a-z0-9_.-]{0,31}$/i;

/** envd's default user (a name from the template's /etc/passwd) and working directory (absolute). */
export function checkEnvdDefaults(user: string | undefined, workdir: string | undefined): void {
  if (user !== undefined && !USER_NAME_RE.test(user)) {
    throw new InvalidArgumentError(
      `default_user "${user}" is not a valid user name (letters, digits, _ . -; at most 32)`,
    );
  }
  if (workdir !== undefined && (!workdir.startsWith('/') || workdir.includes('\0') || workdir.length > 4096)) {
    throw new InvalidArgumentError(`default_workdir "${workdir}" must be an absolute path`);
  }
}
