// Mutable envd state shared by the RPC services and HTTP routes: what POST /init set.
import { ENVD_VERSION } from './version.js';

export interface EnvdOptions {
  port: number;
  host?: string;
  /** Default user for processes and files when a request names none (E2B: set by /init). */
  defaultUser?: string;
  defaultWorkdir?: string;
  /** Directory holding passwd/group; tests point it elsewhere. */
  etcDir?: string;
  /** Disable the port scanner/forwarder (tests on the host itself). */
  portForwarding?: boolean;
}

export class EnvdState {
  readonly version = ENVD_VERSION;
  readonly startedAt = Date.now();
  /** Environment added by /init; applied to every process. */
  envVars: Record<string, string> = {};
  accessToken: string | undefined;
  defaultUser: string;
  defaultWorkdir: string | undefined;
  readonly etcDir: string;

  constructor(opts: EnvdOptions) {
    this.defaultUser = opts.defaultUser ?? process.env.WRENN_DEFAULT_USER ?? 'root';
    this.defaultWorkdir = opts.defaultWorkdir;
    this.etcDir = opts.etcDir ?? '/etc';
    const token = process.env.WRENN_ENVD_ACCESS_TOKEN;
    if (token) this.accessToken = token;
    for (const key of ['WRENN_SANDBOX_ID', 'WRENN_TEMPLATE_ID', 'E2B_SANDBOX_ID', 'E2B_TEMPLATE_ID']) {
      const v = process.env[key];
      if (v) this.envVars[key] = v;
    }
    this.applyStartInit();
  }

  /**
   * WRENN_ENVD_INIT: the body of POST /init handed over at start by the host agent, which then saves
   * itself a round trip on every new capsule. Removed from the environment once read.
   */
  private applyStartInit(): void {
    const raw = process.env.WRENN_ENVD_INIT;
    if (raw === undefined) return;
    delete process.env.WRENN_ENVD_INIT;
    let init: unknown;
    try {
      init = JSON.parse(raw);
    } catch {
      throw new Error('WRENN_ENVD_INIT is not valid JSON (expected the body of POST /init)');
    }
    if (typeof init !== 'object' || init === null) throw new Error('WRENN_ENVD_INIT must be a JSON object');
    const { envVars, accessToken, defaultUser, defaultWorkdir } = init as Record<string, unknown>;
    if (envVars !== undefined) {
      if (typeof envVars !== 'object' || envVars === null)
        throw new Error('WRENN_ENVD_INIT.envVars must be an object of strings');
      for (const [k, v] of Object.entries(envVars)) {
        if (typeof v !== 'string') throw new Error(`WRENN_ENVD_INIT.envVars.${k} must be a string`);
        this.envVars[k] = v;
      }
    }
    for (const [name, v] of Object.entries({ accessToken, defaultUser, defaultWorkdir })) {
      if (v !== undefined && typeof v !== 'string') throw new Error(`WRENN_ENVD_INIT.${name} must be a string`);
    }
    if (accessToken) this.accessToken = accessToken as string;
    if (defaultUser) this.defaultUser = defaultUser as string;
    if (defaultWorkdir) this.defaultWorkdir = defaultWorkdir as string;
  }
}
