// The agent side of host registration (`wrenn agent --control-plane URL --token T`): spends the
// one-time token at POST /v1/hosts/register and remembers the result in the agent's data dir, so a
// restarted agent does not need (or burn) a new token. The agent's secret goes with the token: it
// is what the control plane presents on every call to this agent afterwards, and so does the
// agent's TLS certificate, which the control plane pins (auth/pinned-tls.ts). The state file keeps
// only digests of both, so a changed secret or certificate is noticed and asks for a new
// registration. An https:// control plane is verified with the system's CAs, NODE_EXTRA_CA_CERTS,
// or `controlPlaneCa` (`--control-plane-ca`, e.g. the CA of `wrenn server --tls self-signed`).
import { createHash, X509Certificate } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { dirname } from 'node:path';
import tls from 'node:tls';

export interface RegisterWithControlPlaneOptions {
  /** e.g. http://cp.example:8080 */
  controlPlaneUrl: string;
  /** One-time token from an admin (POST /v1/hosts/tokens). Optional when `stateFile` already records a registration. */
  token?: string;
  /** Base URL at which the control plane reaches this agent, e.g. http://10.0.0.5:5007. */
  agentUrl: string;
  /** The secret this agent demands of its callers (RunningAgent.secret). */
  agentSecret: string;
  /** With an https:// agentUrl: the certificate the agent serves (its leaf, PEM), pinned by the control plane. */
  agentTlsCert?: string;
  /** PEM of the CA(s) to trust for an https:// control plane, besides the system's. */
  controlPlaneCa?: string;
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
  /** SHA-256 fingerprint of the TLS certificate the control plane pinned (none for a plain agent). */
  agentCertSha256?: string;
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
  const code = (err as { code?: string })?.code;
  return code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EHOSTUNREACH';
}

const CERT_CODES = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)/;

/** One JSON POST over http or https (with extra CAs), answered as status and text. */
function postJson(
  url: string,
  body: string,
  o: { ca?: string; timeoutMs: number },
): Promise<{ status: number; statusText: string; text: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const headers = { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) };
    const opts: https.RequestOptions = { method: 'POST', headers, timeout: o.timeoutMs, agent: false };
    // Given CAs are added to the system's (setting `ca` alone would replace them).
    if (u.protocol === 'https:' && o.ca) opts.ca = [...tls.rootCertificates, o.ca];
    const req = (u.protocol === 'https:' ? https : http).request(u, opts, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= 64 * 1024) chunks.push(c);
      });
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          statusText: res.statusMessage ?? '',
          text: Buffer.concat(chunks).toString('utf8'),
        }),
      );
      res.on('error', reject);
    });
    req.on('timeout', () =>
      req.destroy(Object.assign(new Error(`no answer within ${o.timeoutMs} ms`), { code: 'ETIMEDOUT' })),
    );
    req.on('error', reject);
    req.end(body);
  });
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
  const agentTls = agentUrl.startsWith('https:');
  if (agentTls !== Boolean(o.agentTlsCert)) {
    throw new RegistrationError(
      agentTls
        ? `agentUrl ${agentUrl} is https:// but no certificate was given to pin; this agent serves plain HTTP unless it started with TLS`
        : `agentUrl ${agentUrl} is http:// but this agent serves TLS; advertise https://`,
    );
  }
  let certSha256: string | undefined;
  if (o.agentTlsCert) {
    try {
      certSha256 = new X509Certificate(o.agentTlsCert).fingerprint256;
    } catch (err) {
      throw new RegistrationError(`the agent's TLS certificate cannot be parsed: ${(err as Error).message}`);
    }
  }
  if (o.stateFile) {
    const saved = await readState(o.stateFile);
    const same = saved && saved.controlPlaneUrl === controlPlaneUrl && saved.agentUrl === agentUrl;
    const secretSame = saved?.agentSecretSha256 === sha256(o.agentSecret);
    const certSame = saved?.agentCertSha256 === certSha256;
    if (same && secretSame && certSame) return { ...saved, reused: true };
    const schemeOnly =
      saved &&
      saved.controlPlaneUrl === controlPlaneUrl &&
      saved.agentUrl.replace(/^https?:/, '') === agentUrl.replace(/^https?:/, '');
    if (schemeOnly && !same && !o.token) {
      throw new RegistrationError(
        `this agent registered as ${saved.agentUrl} and now serves ${agentUrl}: pass --token (an admin creates one with POST /v1/hosts/tokens) to register it again${agentTls ? ', or --tls off to keep serving plain HTTP' : ''}`,
      );
    }
    if (same && !o.token) {
      const what = !secretSame ? 'secret' : 'TLS certificate';
      throw new RegistrationError(
        `this agent's ${what} changed since it registered, so the control plane would refuse or could not reach it: pass --token (an admin creates one with POST /v1/hosts/tokens) to register again`,
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
    ...(o.agentTlsCert ? { agent_tls_cert: o.agentTlsCert } : {}),
    ...(o.hostId ? { host_id: o.hostId } : {}),
    ...(o.runtimes ? { runtimes: o.runtimes } : {}),
    ...(o.cpuCount ? { cpu_count: o.cpuCount } : {}),
    ...(o.memoryMb ? { memory_mb: o.memoryMb } : {}),
  });
  const attempts = Math.max(1, o.attempts ?? 5);
  let res: { status: number; statusText: string; text: string } | undefined;
  for (let i = 1; ; i++) {
    try {
      res = await postJson(`${controlPlaneUrl}/v1/hosts/register`, body, {
        ...(o.controlPlaneCa ? { ca: o.controlPlaneCa } : {}),
        timeoutMs: o.timeoutMs ?? 15_000,
      });
      break;
    } catch (err) {
      if (i >= attempts || !isConnectionError(err)) {
        const code = (err as { code?: string }).code ?? '';
        const hint =
          code === 'ERR_TLS_CERT_ALTNAME_INVALID'
            ? ` (the control plane's certificate does not name ${new URL(controlPlaneUrl).hostname}: use the name it was made for, e.g. api.<domain> for \`wrenn server --tls self-signed\`)`
            : CERT_CODES.test(code)
              ? " (the control plane's certificate is not trusted: pass --control-plane-ca <its CA file>; for `wrenn server --tls self-signed` that is <its data dir>/tls/ca.crt)"
              : '; check the URL and that it runs';
        throw new RegistrationError(
          `cannot reach the control plane at ${controlPlaneUrl}: ${(err as Error).message}${hint}`,
        );
      }
      await new Promise((r) => setTimeout(r, 250 * 2 ** (i - 1)));
    }
  }
  const text = res.text;
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
    ...(certSha256 ? { agentCertSha256: certSha256 } : {}),
  };
  if (o.stateFile) await writeState(o.stateFile, reg);
  return { ...reg, reused: false };
}
