// Runs the system networking tools (ip, tc, iptables-restore) with a batch on stdin.
// One spawn per batch keeps capsule creation fast.
import { spawn } from 'node:child_process';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `cmd args` with `input` on stdin and resolves with its exit code and output (never rejects on exit code). */
export function run(cmd: string, args: readonly string[], input = ''): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') {
        reject(new Error(`${cmd} is not installed: install the Debian packages iproute2 and iptables (scripts/setup.mjs does)`));
      } else reject(e);
    });
    child.on('close', (code) =>
      resolve({ code: code ?? 1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }),
    );
    child.stdin.on('error', () => {}); // the tool may exit before reading everything; its exit code tells
    child.stdin.end(input);
  });
}

/** Like run(), but rejects with the tool's own error text when it exits non-zero. */
export async function runOk(cmd: string, args: readonly string[], input = '', what = ''): Promise<string> {
  const r = await run(cmd, args, input);
  if (r.code !== 0) {
    const ctx = what ? `${what}: ` : '';
    throw new Error(`${ctx}${cmd} ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  }
  return r.stdout;
}
