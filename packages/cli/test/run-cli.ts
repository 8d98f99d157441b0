// The `wrenn` command as a user runs it, for the CLI's live tests: `node packages/cli/bin/wrenn.js
// ...` in a child process with a live stack's key and URL and a private config dir (HOME).
import { spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLI_BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../bin/wrenn.js');
/** A line of a JS stack trace: the CLI must never print one without --debug. */
export const STACK_LINE = /^\s+at .+:\d+:\d+\)?$/m;

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment the CLI gets: PATH, a private HOME/config dir, the stack's key and URL. */
export function cliEnv(live: { url: string; apiKey: string }, home: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    XDG_CONFIG_HOME: join(home, '.config'),
    WRENN_API_KEY: live.apiKey,
    WRENN_BASE_URL: live.url,
  };
}

/** Runs `wrenn <args>` to its end with `input` on stdin; never rejects on a non-zero exit. */
export function runCli(args: string[], env: Record<string, string>, input = ''): Promise<CliRun> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [CLI_BIN, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}
