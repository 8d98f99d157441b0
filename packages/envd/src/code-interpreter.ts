// Starts the code-interpreter server (code-interpreter/server.cjs, built from ./code-interpreter/
// into envd's bundle, run by the same node binary as envd) when
// the capsule's template asks for it with /etc/wrenn/code-interpreter.json ({port, user, cwd}), as
// `code-interpreter-v1` does. It runs as the user the file names (root there, as E2B's Jupyter
// does) with a clean environment (nothing of envd's own, no access token) and is started again if it exits. The sandbox's variables reach its
// kernels through envd's GET /envs, since a warm-pool capsule boots before it has any.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { lookupUser } from './users.js';

export const CODE_INTERPRETER_CONFIG = '/etc/wrenn/code-interpreter.json';
/** Where the capsule sees envd's bundle (the host agent bind-mounts it read-only). */
export const CODE_INTERPRETER_SERVER = '/opt/wrenn/envd/code-interpreter/server.cjs';

interface ServerConfig {
  port: number;
  user: string;
  cwd: string;
}

function readConfig(path: string): ServerConfig | undefined {
  if (!existsSync(path)) return undefined;
  const raw = JSON.parse(readFileSync(path, 'utf8')) as Partial<ServerConfig>;
  const port = Number(raw.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${path}: port must be a TCP port`);
  return { port, user: typeof raw.user === 'string' ? raw.user : 'root', cwd: String(raw.cwd ?? '/') };
}

/**
 * The command that runs this node binary again: in a capsule envd runs the host's node through
 * the dynamic loader (`ld.so --library-path <lib> node ...`), so the prefix is read from our own
 * command line up to the node binary.
 */
export function nodeCommand(): string[] {
  try {
    const argv = readFileSync('/proc/self/cmdline', 'utf8').split('\0');
    const at = argv.findIndex((a) => basename(a) === 'node' || basename(a) === 'nodejs');
    if (at > 0 && basename(argv[0] ?? '').startsWith('ld-')) return argv.slice(0, at + 1);
  } catch {
    // no /proc: run ourselves directly
  }
  return [process.execPath];
}

const log = (msg: string, extra: Record<string, unknown> = {}) =>
  process.stderr.write(`${JSON.stringify({ level: 'info', msg, ...extra })}\n`);

/** Starts the server when the template asks for it; returns a stop function (a no-op otherwise). */
export function startCodeInterpreter(opts: { config?: string; server?: string; envdPort?: number } = {}): () => void {
  let config: ServerConfig | undefined;
  try {
    config = readConfig(opts.config ?? CODE_INTERPRETER_CONFIG);
  } catch (err) {
    log('code interpreter not started', { err: String(err) });
    return () => undefined;
  }
  if (!config) return () => undefined;
  const cfg = config;
  const server = opts.server ?? CODE_INTERPRETER_SERVER;
  let child: ChildProcess | undefined;
  let stopped = false;
  let delayMs = 500;
  const launch = () => {
    const user = lookupUser(cfg.user);
    const [node = process.execPath, ...prefix] = nodeCommand();
    const args = [...prefix, server, '--port', String(cfg.port), '--cwd', cfg.cwd];
    if (opts.envdPort) args.push('--envd-port', String(opts.envdPort));
    child = spawn(node, args, {
      cwd: cfg.cwd,
      uid: user.uid,
      gid: user.gid,
      stdio: ['ignore', 'inherit', 'inherit'],
      env: {
        PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        HOME: user.home,
        USER: user.name,
        LOGNAME: user.name,
        SHELL: user.shell,
        LANG: 'C.UTF-8',
        PYTHONUNBUFFERED: '1',
      },
    });
    const started = Date.now();
    child.on('error', (err) => log('code interpreter could not start', { err: err.message }));
    child.on('exit', (code, signal) => {
      if (stopped) return;
      // Back off while it keeps dying at start; a long run resets the delay.
      delayMs = Date.now() - started > 30_000 ? 500 : Math.min(delayMs * 2, 10_000);
      log('code interpreter exited; starting it again', { code, signal, inMs: delayMs });
      setTimeout(() => stopped || launch(), delayMs).unref();
    });
  };
  try {
    launch();
  } catch (err) {
    log('code interpreter not started', { err: String(err) });
  }
  return () => {
    stopped = true;
    child?.kill('SIGTERM');
  };
}
