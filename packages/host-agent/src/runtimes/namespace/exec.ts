// Runs a command inside a running namespace capsule from the host, without envd: in the
// capsule's cgroups, namespaces and root, as a uid/gid inside it. For diagnostics, tests and
// recovery; normal traffic goes through envd.
import { spawn } from 'node:child_process';
import type { RuntimeHandle } from '../runtime.js';
import { CapsuleCgroups } from './cgroups.js';
import { CAPSULE_NOFILE } from './file-table.js';
import type { NamespaceState } from './namespace-runtime.js';
import { nsinitPath } from './nsinit-binary.js';
import { seccompAllowArg } from './seccomp-switches.js';

export interface ExecOptions {
  uid?: number;
  gid?: number;
  cwd?: string;
  env?: Record<string, string>;
  input?: string;
  /** Kill the command (SIGKILL to the helper and, through it, SIGTERM) after this long. */
  timeoutMs?: number;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function execInCapsule(
  handle: RuntimeHandle,
  argv: string[],
  opts: ExecOptions = {},
): Promise<ExecResult> {
  const s = handle.state as unknown as NamespaceState;
  if (handle.runtime !== 'namespace' || !s?.pid)
    throw new Error(`capsule ${handle.id} is not a running namespace capsule`);
  if (argv.length === 0) throw new Error('execInCapsule needs a command');
  const helper = await nsinitPath();
  const args = [
    'exec',
    '--pid',
    String(s.pid),
    ...(s.cgroupDirs ?? new CapsuleCgroups(handle.id).uniqueDirs()).flatMap((d) => ['--cgroup', d]),
    '--uid',
    String(opts.uid ?? 0),
    '--gid',
    String(opts.gid ?? opts.uid ?? 0),
    '--cwd',
    opts.cwd ?? '/',
    '--nofile',
    CAPSULE_NOFILE,
    '--seccomp-allow',
    seccompAllowArg(s),
    '--',
    ...argv,
  ];
  const env = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', ...opts.env };
  return new Promise((resolve, reject) => {
    const child = spawn(helper, args, { stdio: ['pipe', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGTERM'), opts.timeoutMs) : undefined;
    child.on('error', reject);
    child.on('close', (code, sig) => {
      if (timer) clearTimeout(timer);
      resolve({ code: code ?? 128 + (sig === 'SIGKILL' ? 9 : 15), stdout, stderr });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}
