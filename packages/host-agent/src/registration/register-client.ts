// The agent side of host registration (`wrenn agent --control-plane URL --token T`): spends the
// one-time token at POST /v1/hosts/register and remembers the result in the agent's data dir, so a
// restarted agent does not need (or burn) a new token. The agent's secret goes with the token: it
// is what the control plane presents on every call to this agent afterwards. The state file keeps
// only a digest of that secret, so a changed secret is noticed and asks for a new registration.
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface RegisterWithControlPlaneOptions {
  /** e.g. http://cp.example:8080 */
  controlPlaneUrl: string;
  /** One-time token from an admin (POST /v1/hosts/tokens). Optional when `stateFile` already records a registration. */
  token?: string;
  /** Base URL at which the control plane reaches this agent, e.g. http://10.0.0.5:5007. */
  agentUrl: string;
  /** The secret this agent demands of its callers (RunningAgent.secret). */
  agentSecret: string;
  /** The agent's own host id (the control plane checks it against what the agent reports). */
  hostId?: string;
  /** Reported capacity; the control plane asks the agent itself when they are left out. */
  runtimes?: string[];
  cpuCount?: number;
  memoryMb?: number;
  /** Where the registration is remembered, e.g. <agent dataDir>/control-plane.json. */
  stateFile?: string;
  /** Attempts while the control plane is not answering yet. Default 5. */
  attempts?: number;
  /** Per-request deadline. Default 15000 (registration probes the agent back). */
  timeoutMs?: number;
}

export interface Registration {
  hostId: string;
  controlPlaneUrl: string;
  agentUrl: string;
  registeredAt: string;
  /** sha256 hex of the agent secret the control plane was given. */
  agentSecretSha256?: string;
}

export class RegistrationError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'RegistrationError';
  }
}

const trimSlash = (u: string) => u.replace(/\/+$/, '');
const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

async function readState(file: string): Promise<Registration | undefined> {
  try {
    const v = JSON.parse(await readFile(file, 'utf8')) as Partial<Registration>;
    if (typeof v.hostId === 'string' && typeof v.controlPlaneUrl === 'string' && typeof v.agentUrl === 'string')
      return v as Registration;
  } catch {
    // absent or unreadable: register anew
  }
  return undefined;
}

async function writeState(file: string, reg: Registration): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(reg, null, 2)}\n`, { mode: 0o600 });
  await rename(tmp, file);
}

function isConnectionError(err: unknown): boolean {
  const code = (err as { cause?: { code?: string } })?.cause?.code;
  return code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EHOSTUNREACH' || code === 'UND_ERR_SOCKET';
}

export async function registerWithControlPlane(
  o: RegisterWithControlPlaneOptions,
): Promise<Registration & { reused: boolean }> {
  const controlPlaneUrl = trimSlash(o.controlPlaneUrl);
  const agentUrl = trimSlash(o.agentUrl);
  for (const [name, v] of [
    ['controlPlaneUrl', controlPlaneUrl],
    ['agentUrl', agentUrl],
  ] as const) {
    if (!/^https?:\/\/[^/]+$/.test(v))
      throw new RegistrationError(`${name} "${v}" must be a base URL like http://host:port`);
  }
  if (o.stateFile) {
    const saved = await readState(o.stateFile);
    const same = saved && saved.controlPlaneUrl === controlPlaneUrl && saved.agentUrl === agentUrl;
    if (same && saved.agentSecretSha256 === sha256(o.agentSecret)) return { ...saved, reused: true };
    if (same && !o.token) {
      throw new RegistrationError(
        "this agent's secret changed since it registered, so the control plane could not call it: pass --token (an admin creates one with POST /v1/hosts/tokens) to register again",
      );
    }
  }
  if (!o.token) {
    throw new RegistrationError(
      'this agent is not registered with that control plane yet: pass --token (an admin creates one with POST /v1/hosts/tokens)',
    );
  }
  const body = JSON.stringify({
    token: o.token,
    address: agentUrl,
    agent_secret: o.agentSecret,
    ...(o.hostId ? { host_id: o.hostId } : {}),
    ...(o.runtimes ? { runtimes: o.runtimes } : {}),
    ...(o.cpuCount ? { cpu_count: o.cpuCount } : {}),
    ...(o.memoryMb ? { memory_mb: o.memoryMb } : {}),
  });
  const attempts = Math.max(1, o.attempts ?? 5);
  let res: Response | undefined;
  for (let i = 1; ; i++) {
    try {
      res = await fetch(`${controlPlaneUrl}/v1/hosts/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        signal: AbortSignal.timeout(o.timeoutMs ?? 15_000),
      });
      break;
    } catch (err) {
      if (i >= attempts || !isConnectionError(err)) {
        throw new RegistrationError(
          `cannot reach the control plane at ${controlPlaneUrl}: ${(err as Error).message}; check the URL and that it runs`,
        );
      }
      await new Promise((r) => setTimeout(r, 250 * 2 ** (i - 1)));
    }
  }
  const text = await res.text();
  let parsed: { host_id?: string; error?: { message?: string } } = {};
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch {
    // not JSON: reported below
  }
  if (res.status !== 201 || typeof parsed.host_id !== 'string') {
    const why = parsed.error?.message ?? (text.slice(0, 300) || res.statusText);
    throw new RegistrationError(`the control plane refused the registration (${res.status}): ${why}`, res.status);
  }
  const reg: Registration = {
    hostId: parsed.host_id,
    controlPlaneUrl,
    agentUrl,
    registeredAt: new Date().toISOString(),
    agentSecretSha256: sha256(o.agentSecret),
  };
  if (o.stateFile) await writeState(o.stateFile, reg);
  return { ...reg, reused: false };
}
