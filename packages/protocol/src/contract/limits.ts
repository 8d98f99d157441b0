// The numbers of the capsule contract: what a capsule may ask for, what it gets when it asks for
// nothing, and where its envd listens. Every API, the agent and the SDK read them from here.

import { NETWORK_LIMITS } from './network.js';

/** Bounds of a capsule request; the API schemas and the agent's checks use these numbers. */
export const CAPSULE_LIMITS = {
  minVcpus: 1,
  maxVcpus: 8,
  minMemoryMb: 64,
  maxMemoryMb: 65536,
  /** 0 means "never"; otherwise at most a week. */
  maxTimeoutSec: 7 * 24 * 3600,
  /** One command's own timeout (exec, streamed commands); 0 means none. */
  maxCommandTimeoutSec: 24 * 3600,
  maxMetadataKeys: 64,
  maxMetadataKeyLength: 128,
  maxMetadataValueLength: 1024,
  /**
   * Environment variables of a capsule or a command, as JSON. A capsule's reach its envd in one
   * environment string at start, which the kernel caps at 128 KiB (MAX_ARG_STRLEN).
   */
  maxEnvBytes: 64 * 1024,
  /** Entries of network.allow_out (CIDRs and domains; the network contract's number). */
  maxAllowOut: NETWORK_LIMITS.maxAllowOut,
  /** A user name as useradd takes it (the default user of a capsule's commands). */
  maxUserNameLength: 32,
  /** MCP servers named in a create's `mcp` (E2B's gateway config, which the SDK passes on a command line). */
  maxMcpServers: 64,
  maxMcpServerNameLength: 200,
  maxMcpBytes: 64 * 1024,
  /** A create's Idempotency-Key header (a client's, or the load balancer's request id). */
  maxIdempotencyKeyLength: 255,
} as const;

/** What a capsule gets for every field its request leaves out. */
export const CAPSULE_DEFAULTS = {
  template: 'minimal',
  vcpus: 1,
  memoryMb: 512,
  timeoutSec: 300,
  internet: true,
} as const;

/** envd's port inside every capsule (the E2B SDK's fixed port). */
export const ENVD_PORT = 49983;
