// Runs the block-device tools (losetup, dmsetup, cp, blockdev) without a shell and reports their
// own error text; a missing tool names the Debian package that provides it.
import { spawn } from 'node:child_process';

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

const PACKAGE_OF: Record<string, string> = {
  losetup: 'mount',
  dmsetup: 'dmsetup',
  blockdev: 'util-linux',
  cp: 'coreutils',
};

/** Runs `cmd args`; resolves with the exit code and output (never rejects on a non-zero exit). */
export function runTool(cmd: string, args: readonly string[]): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT')
        reject(new Error(`${cmd} is not installed: install the Debian package ${PACKAGE_OF[cmd] ?? cmd}`));
      else reject(e);
    });
    child.on('close', (code) =>
      resolve({ code: code ?? 1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }),
    );
  });
}

/** Like runTool(), but rejects with the command line and the tool's own message on failure. */
export async function runToolOk(cmd: string, args: readonly string[], what: string): Promise<string> {
  const r = await runTool(cmd, args);
  if (r.code !== 0)
    throw new Error(
      `${what}: \`${cmd} ${args.join(' ')}\` failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`,
    );
  return r.stdout;
}
