// Runs the system networking tools (ip, tc, iptables-restore, ipset) with a batch on stdin.
// One spawn per batch keeps capsule creation fast, and each spawn is a vfork (@wrenn/native's
// runNative): a fork of the agent costs milliseconds, on the create path.
import { runNative } from '@wrenn/native';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `cmd args` with `input` on stdin and resolves with its exit code and output (never rejects on exit code). */
export async function run(cmd: string, args: readonly string[], input = ''): Promise<ExecResult> {
  try {
    const r = await runNative(cmd, args, { input });
    return { code: r.code ?? 1, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(
        `${cmd} is not installed: install the Debian packages iproute2, iptables and ipset (scripts/setup.mjs does)`,
      );
    }
    throw e;
  }
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
