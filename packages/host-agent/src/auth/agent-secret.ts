// The host agent's shared secret, which every caller of its service presents (request-auth.ts).
// It comes from WRENN_AGENT_SECRET, else from <dataDir>/agent-secret, made on first start with
// mode 0600 so only root on the host (and whoever root gives it to) can read it. A control plane
// learns it when the agent registers (sent with the one-time token) or, for `wrenn up`'s own
// agent, from the running agent itself.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const AGENT_SECRET_ENV = 'WRENN_AGENT_SECRET';
export const AGENT_SECRET_FILE = 'agent-secret';
const SECRET_RE = /^[A-Za-z0-9._~+/=-]{32,256}$/;

export interface AgentSecret {
  secret: string;
  /** Where it came from, for logs and the 401 message. */
  source: 'env' | 'file' | 'generated';
  /** <dataDir>/agent-secret (where it is, or would be, kept). */
  file: string;
}

export class AgentSecretError extends Error {
  override name = 'AgentSecretError';
}

export function checkAgentSecret(secret: string, where: string): string {
  if (!SECRET_RE.test(secret)) {
    throw new AgentSecretError(
      `${where} must be 32-256 characters of A-Z a-z 0-9 . _ ~ + / = - (e.g. openssl rand -base64 32)`,
    );
  }
  return secret;
}

export async function loadAgentSecret(dataDir: string, env: NodeJS.ProcessEnv = process.env): Promise<AgentSecret> {
  const file = join(dataDir, AGENT_SECRET_FILE);
  const fromEnv = env[AGENT_SECRET_ENV];
  if (fromEnv !== undefined && fromEnv !== '')
    return { secret: checkAgentSecret(fromEnv.trim(), AGENT_SECRET_ENV), source: 'env', file };
  let text: string | undefined;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (text !== undefined) {
    // A copy someone loosened is tightened again: the secret is root's alone.
    if (((await stat(file)).mode & 0o077) !== 0) await chmod(file, 0o600);
    return { secret: checkAgentSecret(text.trim(), file), source: 'file', file };
  }
  const secret = randomBytes(32).toString('base64url');
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${secret}\n`, { mode: 0o600, flag: 'wx' });
  await rename(tmp, file);
  return { secret, source: 'generated', file };
}
