// `wrenn exec <id> -- cmd...`: runs a command in a capsule, streams its output and exits with its
// exit code. Piped stdin is forwarded (echo hi | wrenn exec id -- cat).
import { CAPSULE_LIMITS } from '@wrenn/protocol';
import { ApiClient, CommandExitError, Commands } from '@wrenn/sdk';
import { CliError, connection, parseIntOption, run, shellJoin } from './support.js';

export interface ExecOpts {
  cwd?: string;
  user?: string;
  env?: string[];
  timeout?: string;
}

export const exec = (id: string, words: string[], o: ExecOpts & { envs?: Record<string, string> }) =>
  run(async () => {
    if (words.length === 0) throw new CliError('give the command after --, e.g. `wrenn exec <id> -- ls -la /`');
    const timeoutSec = parseIntOption('--timeout', o.timeout, 0, CAPSULE_LIMITS.maxCommandTimeoutSec);
    // Straight to the command's WebSocket, which refuses an unknown or paused capsule itself: no
    // REST round trip first, and no HTTP client (undici) to load, keeps `wrenn exec` quick.
    const commands = new Commands(new ApiClient(connection()), id);
    const pipeStdin = !process.stdin.isTTY;
    const handle = await commands.run(shellJoin(words), {
      background: true,
      stdin: pipeStdin,
      ...(o.cwd ? { cwd: o.cwd } : {}),
      ...(o.user ? { user: o.user } : {}),
      ...(o.envs ? { envs: o.envs } : {}),
      timeoutMs: (timeoutSec ?? 0) * 1000,
      onStdout: (d) => process.stdout.write(d),
      onStderr: (d) => process.stderr.write(d),
    });
    if (pipeStdin) {
      void (async () => {
        for await (const chunk of process.stdin as AsyncIterable<Buffer>) await handle.sendStdin(new Uint8Array(chunk));
        await handle.closeStdin();
      })().catch(() => undefined);
    }
    let code = 0;
    try {
      await handle.wait();
    } catch (err) {
      if (!(err instanceof CommandExitError)) throw err;
      code = err.exitCode < 0 ? 1 : err.exitCode;
      // A signal or a timeout is worth saying; a plain non-zero exit speaks for itself.
      if (err.error && !/^exit status \d+$/.test(err.error)) process.stderr.write(`wrenn: ${err.error}\n`);
    }
    await new Promise<void>((r) => process.stdout.write('', () => r()));
    process.exit(code);
  });
