// The rules of a capsule request that no JSON schema can say (env names, byte budgets, NUL bytes),
// written once. Each returns the first problem as a sentence naming the field, or undefined; the
// process that took the input turns it into its own error (an HTTP 400, a Connect InvalidArgument).
import { imageReferenceProblem, type RegistryCredentials, registryCredentialsProblem } from './images.js';
import { type CAPSULE_DEFAULTS, CAPSULE_LIMITS } from './limits.js';
import { type EgressPolicy, egressPolicyProblem } from './network.js';
import type { CapsulePlainFieldsJson } from './plain-fields.js';
import { maskRequestHostProblem, type PublicTrafficSettings } from './public-traffic.js';
import { RUNTIME_NAMES } from './states.js';
import { volumeMountsProblem } from './volumes.js';

/** A POSIX shell variable name: what envd can export. */
export const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** A user name as Debian's useradd takes it. */
export const USER_NAME_RE = /^[a-z0-9_][a-z0-9_.-]{0,31}$/i;

/** The fields of a capsule request every process shares (camelCase; the APIs map their JSON onto it). */
export interface CapsuleRequest {
  /**
   * A container image to start from instead of a template (registry/repository[:tag][@digest]);
   * the image becomes a template of the team on first use.
   */
  image?: string;
  /** Credentials for `image`'s registry (default: the host's auth file, else anonymous). */
  registryCredentials?: RegistryCredentials;
  /** Template or snapshot name. Every default is in {@link CAPSULE_DEFAULTS}, every bound in {@link CAPSULE_LIMITS}. */
  template?: string;
  /** A snapshot keeps the shape it was taken with. */
  vcpus?: number;
  memoryMb?: number;
  /** Seconds of inactivity until the timeout action applies; 0 = never. */
  timeoutSec?: number;
  /** Environment variables of every process in the capsule. */
  envs?: Record<string, string>;
  /** Labels to find the capsule by; also exported into its environment. */
  metadata?: Record<string, string>;
  /** Outbound internet access. */
  internet?: boolean;
  /** While paused, resume on the next request through the sandbox proxy (held until it runs). */
  autoResume?: boolean;
  /**
   * Egress policy (network.ts): allowOut (CIDRs, domains; beats denyOut and the internet switch),
   * denyOut (CIDRs), rules (per-domain transforms). The host decides which private ranges may be named.
   */
  network?: EgressPolicy & PublicTrafficSettings;
  /** namespace, qemu or firecracker (default: what the host offers). */
  runtime?: string;
  /** envd's default user for commands and files (a name in the template's /etc/passwd). */
  defaultUser?: string;
  /** The team's volumes (by name) mounted read-write at absolute paths inside the capsule. */
  volumeMounts?: { name: string; path: string }[];
  /**
   * E2B's MCP gateway config: server name -> its settings. Only recorded (the server names, in the
   * capsule's audit log); the e2b SDK starts the gateway inside the capsule itself.
   */
  mcp?: Record<string, unknown> | null;
  /** The plain fields given (plain-fields.ts): stored and returned, nothing else. */
  plainFields?: CapsulePlainFieldsJson;
}

function intProblem(value: number | undefined, field: string, min: number, max: number): string | undefined {
  if (value === undefined || (Number.isInteger(value) && value >= min && value <= max)) return undefined;
  return `${field} must be a whole number from ${min} to ${max}, got ${value}`;
}

function stringRecordProblem(value: unknown, field: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) return `${field} must be an object of string values`;
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') return `${field}.${k} must be a string, got ${typeof v}`;
  }
  return undefined;
}

export const timeoutProblem = (value: number | undefined, field = 'timeout_sec'): string | undefined =>
  intProblem(value, field, 0, CAPSULE_LIMITS.maxTimeoutSec);

export const commandTimeoutProblem = (value: unknown, field = 'timeout_sec'): string | undefined =>
  value === undefined ? undefined : intProblem(value as number, field, 0, CAPSULE_LIMITS.maxCommandTimeoutSec);

/** Environment variables of a capsule or of one command. */
export function envsProblem(envs: unknown, field = 'env'): string | undefined {
  const shape = stringRecordProblem(envs, field);
  if (shape || envs === undefined || envs === null) return shape;
  const record = envs as Record<string, string>;
  for (const [k, v] of Object.entries(record)) {
    if (!ENV_NAME_RE.test(k))
      return `${field} key '${k}' is not a valid environment variable name (letters, digits, _; not starting with a digit)`;
    if (v.includes('\0')) return `${field}.${k} contains a NUL byte`;
  }
  const bytes = new TextEncoder().encode(JSON.stringify(record)).length;
  if (bytes > CAPSULE_LIMITS.maxEnvBytes)
    return `${field} takes at most ${CAPSULE_LIMITS.maxEnvBytes} bytes (its keys and values as JSON), got ${bytes}; pass large values as files instead`;
  return undefined;
}

/** Labels of a capsule; they are also exported into its environment, where a NUL cannot go. */
export function metadataProblem(metadata: unknown, field = 'metadata'): string | undefined {
  const shape = stringRecordProblem(metadata, field);
  if (shape || metadata === undefined || metadata === null) return shape;
  const entries = Object.entries(metadata as Record<string, string>);
  if (entries.length > CAPSULE_LIMITS.maxMetadataKeys)
    return `${field} may hold at most ${CAPSULE_LIMITS.maxMetadataKeys} keys, got ${entries.length}`;
  for (const [k, v] of entries) {
    if (k.length === 0 || k.length > CAPSULE_LIMITS.maxMetadataKeyLength)
      return `${field} keys must be 1-${CAPSULE_LIMITS.maxMetadataKeyLength} characters, got '${k.slice(0, 40)}'`;
    if (v.length > CAPSULE_LIMITS.maxMetadataValueLength)
      return `${field}.${k} is longer than ${CAPSULE_LIMITS.maxMetadataValueLength} characters`;
    if (k.includes('\0') || v.includes('\0'))
      return `${field} key or value '${k.replace(/\0/g, '\\0').slice(0, 40)}' contains a NUL byte`;
  }
  return undefined;
}

/** E2B's `mcp`: an object of server name -> settings object ("github/owner/repo" names too). */
/** A create's Idempotency-Key: 1-255 visible ASCII characters (an HTTP header value, kept as given). */
export const IDEMPOTENCY_KEY_RE = /^[\x21-\x7e]+$/;
export function idempotencyKeyProblem(key: string, field = 'Idempotency-Key'): string | undefined {
  if (key.length === 0 || key.length > CAPSULE_LIMITS.maxIdempotencyKeyLength)
    return `${field} must be 1-${CAPSULE_LIMITS.maxIdempotencyKeyLength} characters, got ${key.length}`;
  if (!IDEMPOTENCY_KEY_RE.test(key)) return `${field} may hold only visible ASCII characters (no spaces)`;
  return undefined;
}

export const MCP_SERVER_NAME_RE = /^[A-Za-z0-9@][A-Za-z0-9._/@-]*$/;
export function mcpProblem(mcp: unknown, field = 'mcp'): string | undefined {
  if (mcp === undefined || mcp === null) return undefined;
  if (typeof mcp !== 'object' || Array.isArray(mcp))
    return `${field} must be an object of MCP server name -> settings, got ${Array.isArray(mcp) ? 'an array' : typeof mcp}`;
  const entries = Object.entries(mcp as Record<string, unknown>);
  if (entries.length > CAPSULE_LIMITS.maxMcpServers)
    return `${field} may name at most ${CAPSULE_LIMITS.maxMcpServers} servers, got ${entries.length}`;
  for (const [name, settings] of entries) {
    if (name.length > CAPSULE_LIMITS.maxMcpServerNameLength || !MCP_SERVER_NAME_RE.test(name))
      return `${field} server name '${name.slice(0, 40)}' is not valid: 1-${CAPSULE_LIMITS.maxMcpServerNameLength} characters of letters, digits, . _ / @ -`;
    if (typeof settings !== 'object' || settings === null || Array.isArray(settings))
      return `${field}.${name} must be an object of the server's settings`;
  }
  const bytes = new TextEncoder().encode(JSON.stringify(mcp)).length;
  if (bytes > CAPSULE_LIMITS.maxMcpBytes)
    return `${field} takes at most ${CAPSULE_LIMITS.maxMcpBytes} bytes as JSON, got ${bytes}`;
  return undefined;
}

export function userNameProblem(user: string | undefined, field = 'default_user'): string | undefined {
  if (user === undefined || USER_NAME_RE.test(user)) return undefined;
  return `${field} "${user}" is not a valid user name (letters, digits, _ . -; at most ${CAPSULE_LIMITS.maxUserNameLength})`;
}

/**
 * Every contract rule of a create request, first problem first. Which private ranges allow_out
 * may name, and whether the host has the CPUs asked for, are the host's to say, not the contract's.
 */
export function capsuleRequestProblem(req: CapsuleRequest): string | undefined {
  const allowOut = req.network?.allowOut;
  return (
    (req.image !== undefined && req.template !== undefined ? 'give either template or image, not both' : undefined) ??
    imageReferenceProblem(req.image) ??
    registryCredentialsProblem(req.registryCredentials) ??
    (req.registryCredentials && req.image === undefined ? 'registry_credentials needs an image' : undefined) ??
    intProblem(req.vcpus, 'vcpus', CAPSULE_LIMITS.minVcpus, CAPSULE_LIMITS.maxVcpus) ??
    intProblem(req.memoryMb, 'memory_mb', CAPSULE_LIMITS.minMemoryMb, CAPSULE_LIMITS.maxMemoryMb) ??
    timeoutProblem(req.timeoutSec) ??
    (req.runtime !== undefined && !(RUNTIME_NAMES as readonly string[]).includes(req.runtime)
      ? `runtime '${req.runtime}' does not exist; use one of ${RUNTIME_NAMES.join(', ')}`
      : undefined) ??
    envsProblem(req.envs) ??
    metadataProblem(req.metadata) ??
    userNameProblem(req.defaultUser) ??
    volumeMountsProblem(req.volumeMounts) ??
    mcpProblem(req.mcp) ??
    (Array.isArray(allowOut) && allowOut.length > CAPSULE_LIMITS.maxAllowOut
      ? `network.allow_out has ${allowOut.length} entries; at most ${CAPSULE_LIMITS.maxAllowOut}`
      : undefined) ??
    egressPolicyProblem(req.network) ??
    maskRequestHostProblem(req.network?.maskRequestHost)
  );
}
