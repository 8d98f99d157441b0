// Capsule: the handle to one capsule, with its commands, terminals and files, plus the class
// methods that create, find and reconnect to capsules. Shaped like E2B's Sandbox.

import type {
  CapsuleNetworkJson,
  CapsuleRequest,
  CreateNetworkJson,
  EgressPolicy,
  ForkCapsuleBodyJson,
  ForkCapsuleResultJson,
  TimeoutAction,
  UpdateNetworkBodyJson,
} from '@wrenn/protocol';
import {
  CODE_INTERPRETER_PORT,
  type CodeContext,
  CodeInterpreter,
  type CreateCodeContextOptions,
  type Execution,
  type RunCodeOptions,
} from './code-interpreter.js';
import { Commands } from './commands.js';
import type { ConnectionOptions } from './config.js';
import { errorFromResponse, type WrennError } from './errors.js';
import { Filesystem } from './filesystem.js';
import { ApiClient, type Query } from './http.js';
import { Pty } from './pty.js';
import { type CapsuleInfo, type CapsuleJson, type CapsuleMetrics, type CapsuleState, capsuleInfo } from './types.js';

/** An egress policy in the native API's JSON (snake_case). */
function networkJsonOf(p: EgressPolicy): UpdateNetworkBodyJson {
  return {
    ...(p.allowOut !== undefined ? { allow_out: p.allowOut } : {}),
    ...(p.denyOut !== undefined ? { deny_out: p.denyOut } : {}),
    ...(p.rules !== undefined ? { rules: p.rules } : {}),
  };
}

/** A create's network: the egress policy plus who may reach its ports and the Host they see. */
function createNetworkJsonOf(n: NonNullable<CapsuleRequest['network']>): CreateNetworkJson {
  return {
    ...networkJsonOf(n),
    ...(n.allowPublicTraffic !== undefined ? { allow_public_traffic: n.allowPublicTraffic } : {}),
    ...(n.maskRequestHost !== undefined ? { mask_request_host: n.maskRequestHost } : {}),
  };
}

/**
 * The capsule contract's request fields (template or image + registryCredentials, vcpus, memoryMb, timeoutSec, envs, metadata,
 * internet, autoResume, network (allowOut, denyOut, rules, allowPublicTraffic, maskRequestHost), runtime, defaultUser, volumeMounts,
 * plainFields (the contract's plain fields, sent as they are); documented in @wrenn/protocol) plus the SDK's own.
 */
export interface CapsuleCreateOptions extends ConnectionOptions, CapsuleRequest {
  timeoutAction?: TimeoutAction;
  /** Domain of proxy host names for getHost (default: WRENN_DOMAIN, else `localhost` when the base URL is an IP address, else its host name). */
  domain?: string;
}

export interface CapsuleListFilters extends ConnectionOptions {
  /** One state or several (default: all but stopped). */
  state?: CapsuleState | CapsuleState[];
  template?: string;
  metadata?: Record<string, string>;
  /** Page size (default: everything, fetched page by page). */
  limit?: number;
}

export interface CapsuleConnectOptions extends ConnectionOptions {
  /** New timeout when the capsule is resumed. */
  timeoutSec?: number;
  /** Resume a paused or hibernated capsule (default true); false just returns a handle. */
  autoResume?: boolean;
  domain?: string;
}

export interface CapsuleForkOptions {
  /** Forks to make from one copy of this capsule (default 1; the contract's FORK_LIMITS.maxCount at most). */
  count?: number;
  /** Each fork's timeout in seconds (default this capsule's). */
  timeoutSec?: number;
}

export interface CapsuleForkResult {
  /**
   * true on the namespace runtime: each fork has this capsule's files but started fresh processes
   * (its own init and envd); false on the VM runtimes, whose forks restore memory and processes.
   */
  processesRestarted: boolean;
  /** One entry per requested fork: a running capsule, or why that fork did not start. */
  forks: Array<Capsule | WrennError>;
}

export class Capsule {
  readonly capsuleId: string;
  readonly commands: Commands;
  readonly pty: Pty;
  readonly files: Filesystem;
  /** What the server said about the capsule when this handle was made (see getInfo for fresh). */
  info: CapsuleInfo;
  private readonly api: ApiClient;
  private readonly domain: string | undefined;
  private interpreter: CodeInterpreter | undefined;

  /** @internal Use Capsule.create, Capsule.connect or Capsule.get. */
  constructor(api: ApiClient, info: CapsuleInfo, domain?: string) {
    this.api = api;
    this.info = info;
    this.capsuleId = info.capsuleId;
    this.domain = domain;
    this.commands = new Commands(api, info.capsuleId);
    this.pty = new Pty(api, info.capsuleId);
    this.files = new Filesystem(api, info.capsuleId);
  }

  /** E2B's name for the id. */
  get sandboxId(): string {
    return this.capsuleId;
  }

  /** Starts a new capsule from a template, a snapshot or a container image and returns once it runs. */
  static async create(opts: CapsuleCreateOptions = {}): Promise<Capsule> {
    const api = new ApiClient(opts);
    const body = {
      ...(opts.template !== undefined ? { template: opts.template } : {}),
      ...(opts.image !== undefined ? { image: opts.image } : {}),
      ...(opts.registryCredentials !== undefined ? { registry_credentials: opts.registryCredentials } : {}),
      ...(opts.vcpus !== undefined ? { vcpus: opts.vcpus } : {}),
      ...(opts.memoryMb !== undefined ? { memory_mb: opts.memoryMb } : {}),
      ...(opts.timeoutSec !== undefined ? { timeout_sec: opts.timeoutSec } : {}),
      ...(opts.timeoutAction !== undefined ? { timeout_action: opts.timeoutAction } : {}),
      ...(opts.envs !== undefined ? { env: opts.envs } : {}),
      ...(opts.metadata !== undefined ? { metadata: opts.metadata } : {}),
      ...(opts.internet !== undefined ? { internet: opts.internet } : {}),
      ...(opts.autoResume !== undefined ? { auto_resume: opts.autoResume } : {}),
      ...(opts.network !== undefined ? { network: createNetworkJsonOf(opts.network) } : {}),
      ...(opts.runtime !== undefined ? { runtime: opts.runtime } : {}),
      ...(opts.defaultUser !== undefined ? { default_user: opts.defaultUser } : {}),
      ...(opts.volumeMounts !== undefined ? { volume_mounts: opts.volumeMounts } : {}),
      ...opts.plainFields,
    };
    // Creating can include building a template on first use: no client-side deadline by default.
    const j = await api.json<CapsuleJson>('POST', '/v1/capsules', {
      json: body,
      timeoutMs: opts.requestTimeoutMs ?? 0,
    });
    return new Capsule(api, capsuleInfo(j), opts.domain);
  }

  /** A handle to an existing capsule; a paused or hibernated one is resumed first. */
  static async connect(capsuleId: string, opts: CapsuleConnectOptions = {}): Promise<Capsule> {
    const api = new ApiClient(opts);
    let j = await api.json<CapsuleJson>('GET', `/v1/capsules/${encodeURIComponent(capsuleId)}`);
    if ((j.state === 'paused' || j.state === 'hibernated') && opts.autoResume !== false) {
      j = await api.json<CapsuleJson>('POST', `/v1/capsules/${encodeURIComponent(capsuleId)}/resume`, {
        json: opts.timeoutSec !== undefined ? { timeout_sec: opts.timeoutSec } : {},
        timeoutMs: 0,
      });
    }
    return new Capsule(api, capsuleInfo(j), opts.domain);
  }

  /** Information about a capsule by id (without resuming it). */
  static async get(capsuleId: string, opts: ConnectionOptions = {}): Promise<CapsuleInfo> {
    const api = new ApiClient(opts);
    return capsuleInfo(await api.json<CapsuleJson>('GET', `/v1/capsules/${encodeURIComponent(capsuleId)}`));
  }

  /** Capsules of the team, newest first. */
  static async list(filters: CapsuleListFilters = {}): Promise<CapsuleInfo[]> {
    const api = new ApiClient(filters);
    const base: Query = {
      ...(filters.state ? { state: Array.isArray(filters.state) ? filters.state.join(',') : filters.state } : {}),
      ...(filters.template ? { template: filters.template } : {}),
      ...(filters.metadata ? { metadata: Object.entries(filters.metadata).map(([k, v]) => `${k}:${v}`) } : {}),
    };
    const out: CapsuleInfo[] = [];
    let cursor: string | null = null;
    do {
      const page: { capsules: CapsuleJson[]; next_cursor: string | null } = await api.json('GET', '/v1/capsules', {
        query: { ...base, limit: filters.limit ?? 100, ...(cursor ? { cursor } : {}) },
      });
      out.push(...page.capsules.map(capsuleInfo));
      cursor = filters.limit !== undefined ? null : page.next_cursor;
    } while (cursor);
    return out;
  }

  /** Destroys a capsule by id. */
  static async destroy(capsuleId: string, opts: ConnectionOptions = {}): Promise<void> {
    await new ApiClient(opts).json('DELETE', `/v1/capsules/${encodeURIComponent(capsuleId)}`, { timeoutMs: 0 });
  }

  private path(suffix = ''): string {
    return `/v1/capsules/${encodeURIComponent(this.capsuleId)}${suffix}`;
  }

  private async update(method: string, suffix: string, json?: unknown): Promise<CapsuleInfo> {
    const j = await this.api.json<CapsuleJson>(method, this.path(suffix), {
      ...(json !== undefined ? { json } : {}),
      timeoutMs: 0,
    });
    this.info = capsuleInfo(j);
    return this.info;
  }

  /** Fresh information from the server. */
  getInfo(): Promise<CapsuleInfo> {
    return this.update('GET', '');
  }

  /** Pauses the capsule: `freeze` keeps memory and disk, `hibernate` keeps the disk only. */
  pause(opts: { mode?: 'freeze' | 'hibernate' } = {}): Promise<CapsuleInfo> {
    return this.update('POST', '/pause', opts.mode ? { mode: opts.mode } : {});
  }

  resume(opts: { timeoutSec?: number } = {}): Promise<CapsuleInfo> {
    return this.update('POST', '/resume', opts.timeoutSec !== undefined ? { timeout_sec: opts.timeoutSec } : {});
  }

  /**
   * Forks this running capsule: `count` new capsules start from one copy of it, on its host; it
   * keeps running. Each fork succeeds or fails by itself (see CapsuleForkResult).
   */
  async fork(opts: CapsuleForkOptions = {}): Promise<CapsuleForkResult> {
    const body: ForkCapsuleBodyJson = {
      ...(opts.count !== undefined ? { count: opts.count } : {}),
      ...(opts.timeoutSec !== undefined ? { timeout_sec: opts.timeoutSec } : {}),
    };
    const r = await this.api.json<ForkCapsuleResultJson>('POST', this.path('/fork'), { json: body, timeoutMs: 0 });
    return {
      processesRestarted: r.processes_restarted,
      forks: r.forks.map((f) =>
        f.capsule
          ? new Capsule(this.api, capsuleInfo(f.capsule as CapsuleJson), this.domain)
          : errorFromResponse(f.error?.status ?? 0, { error: f.error }, 'the fork did not start'),
      ),
    };
  }

  /** Destroys the capsule (its processes and files are gone). */
  async destroy(): Promise<void> {
    await this.api.json('DELETE', this.path(), { timeoutMs: 0 });
  }

  /** E2B's name for destroy. */
  kill(): Promise<void> {
    return this.destroy();
  }

  /** Sets the timeout: seconds from now until the timeout action applies (0 = never). */
  setTimeout(timeoutSec: number): Promise<CapsuleInfo> {
    return this.update('POST', '/timeout', { timeout_sec: timeoutSec });
  }

  /** The egress policy (allowOut, denyOut, rules) as the capsule's host applies it. */
  async getNetwork(): Promise<Required<EgressPolicy>> {
    const j = await this.api.json<CapsuleNetworkJson>('GET', this.path('/network'));
    return { allowOut: j.allow_out, denyOut: j.deny_out, rules: j.rules };
  }

  /**
   * Replaces the egress policy (an omitted field clears it); new connections follow it at once.
   * E2B's name: updateNetwork.
   */
  async setNetwork(policy: EgressPolicy): Promise<Required<EgressPolicy>> {
    const j = await this.api.json<CapsuleNetworkJson>('PUT', this.path('/network'), { json: networkJsonOf(policy) });
    return { allowOut: j.allow_out, denyOut: j.deny_out, rules: j.rules };
  }

  /** E2B's name for setNetwork. */
  updateNetwork(policy: EgressPolicy): Promise<Required<EgressPolicy>> {
    return this.setNetwork(policy);
  }

  /** Restarts the timeout clock. */
  ping(): Promise<CapsuleInfo> {
    return this.update('POST', '/ping');
  }

  async getMetrics(): Promise<CapsuleMetrics> {
    const m = await this.api.json<Record<string, number | string>>('GET', this.path('/metrics'));
    return {
      cpuUsedPct: Number(m.cpu_used_pct),
      cpuCount: Number(m.cpu_count),
      memUsedBytes: Number(m.mem_used_bytes),
      memTotalBytes: Number(m.mem_total_bytes),
      diskUsedBytes: Number(m.disk_used_bytes),
      diskTotalBytes: Number(m.disk_total_bytes),
      pids: Number(m.pids),
      timestamp: new Date(String(m.timestamp)),
    };
  }

  /** The capsule's code interpreter (templates built on `code-interpreter-v1`), through the proxy. */
  get codeInterpreter(): CodeInterpreter {
    this.interpreter ??= new CodeInterpreter({
      url: this.getUrl(CODE_INTERPRETER_PORT),
      capsuleId: this.capsuleId,
      accessToken: this.info.envdAccessToken,
      trafficAccessToken: this.info.trafficAccessToken,
      requestTimeoutMs: this.api.conn.requestTimeoutMs,
    });
    return this.interpreter;
  }

  /**
   * Runs code in the capsule's code interpreter (python by default; state is kept between calls
   * of a context) and returns its output, results and error; callbacks see them as they stream.
   */
  runCode(code: string, opts: RunCodeOptions = {}): Promise<Execution> {
    return this.codeInterpreter.runCode(code, opts);
  }

  createCodeContext(opts: CreateCodeContextOptions = {}): Promise<CodeContext> {
    return this.codeInterpreter.createCodeContext(opts);
  }

  listCodeContexts(): Promise<CodeContext[]> {
    return this.codeInterpreter.listCodeContexts();
  }

  restartCodeContext(context: CodeContext | string): Promise<void> {
    return this.codeInterpreter.restartCodeContext(context);
  }

  removeCodeContext(context: CodeContext | string): Promise<void> {
    return this.codeInterpreter.removeCodeContext(context);
  }

  /** Host name that reaches `port` in the capsule through the proxy: `<port>-<id>.<domain>`. */
  getHost(port: number): string {
    checkPort(port);
    const u = new URL(this.api.baseUrl);
    // `wrenn up` serves <port>-<id>.localhost by default, and *.localhost reaches loopback; a
    // control plane reached by name serves capsules under that name unless told otherwise.
    const isIp = /^[\d.]+$|^\[/.test(u.hostname);
    const domain = this.domain ?? envDomain() ?? (isIp ? 'localhost' : u.hostname);
    return `${port}-${this.capsuleId}.${domain}${u.port ? `:${u.port}` : ''}`;
  }

  /** URL that reaches `port` in the capsule through the proxy's path form (no DNS needed). */
  getUrl(port: number): string {
    checkPort(port);
    return `${this.api.baseUrl}/proxy/${this.capsuleId}/${port}/`;
  }
}

function envDomain(): string | undefined {
  const p = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return p?.env?.WRENN_DOMAIN || undefined;
}

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new TypeError(`port must be a whole number from 1 to 65535, got ${port}`);
}
