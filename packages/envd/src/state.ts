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
  }
}
