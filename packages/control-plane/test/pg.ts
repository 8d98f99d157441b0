// A throwaway PostgreSQL server for tests: a fresh cluster in a temp dir, listening only on a unix
// socket inside that dir (no TCP port, so runs never collide), run as the `postgres` user when we
// are root (postgres refuses to run as root). Everything is removed by stop(), by an exit/signal
// hook if the test process ends without calling it, and, for a test process that was SIGKILLed,
// by the next start (servers whose owner process is gone are swept).
//
//   const pgServer = await startTestPostgres();
//   const url = await pgServer.createDatabase();   // a new empty database per test or suite
//   ... openDatabase({ databaseUrl: url }) ...
//   await pgServer.stop();
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  appendFileSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export interface TestPostgres {
  /** Directory holding the server's unix socket. */
  socketDir: string;
  /** URL of database `name` on this server (default: the `postgres` maintenance database). */
  url(name?: string): string;
  /** Creates a new empty database and returns its URL. */
  createDatabase(name?: string): Promise<string>;
  /** Stops the server and deletes its files. Safe to call twice. */
  stop(): Promise<void>;
}

const PG_LIB = '/usr/lib/postgresql';

/** Directory of the newest installed PostgreSQL server binaries. */
export function findPostgresBinDir(): string {
  const versions = existsSync(PG_LIB)
    ? readdirSync(PG_LIB)
        .filter((v) => existsSync(join(PG_LIB, v, 'bin', 'postgres')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  const v = versions[0];
  if (!v) {
    throw new Error(
      `PostgreSQL server binaries not found under ${PG_LIB}: install the Debian package 'postgresql' (npm test does it via scripts/setup.mjs --test)`,
    );
  }
  return join(PG_LIB, v, 'bin');
}

interface RunAs {
  uid?: number;
  gid?: number;
}

function postgresUser(): RunAs {
  if (process.getuid?.() !== 0) return {};
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  if (!Number.isInteger(uid) || !Number.isInteger(gid))
    throw new Error('no `postgres` user: install the Debian package postgresql');
  return { uid, gid };
}

let counter = 0;
const DIR_PREFIX = 'wrenn-pg-';
const OWNER_FILE = 'owner.pid';

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * Where servers live. As root the server runs as `postgres`, which must reach the directory and
 * keep the socket path short (< 108 bytes): /tmp always qualifies, a custom TMPDIR may not.
 */
const baseDir = (as: RunAs): string => (as.uid !== undefined ? '/tmp' : tmpdir());

/** Stops and deletes servers left by test processes that died without cleaning up. */
function sweepOrphans(base: string): void {
  for (const name of readdirSync(base).filter((n) => n.startsWith(DIR_PREFIX))) {
    const root = join(base, name);
    let owner: number;
    try {
      owner = Number(readFileSync(join(root, OWNER_FILE), 'utf8'));
    } catch {
      continue; // being created right now, or not ours
    }
    if (!Number.isInteger(owner) || owner <= 0 || isAlive(owner)) continue;
    try {
      const pid = Number(readFileSync(join(root, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
      if (pid > 0 && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('postgres')) process.kill(pid, 'SIGKILL');
    } catch {
      // no server running there
    }
    rmSync(root, { recursive: true, force: true });
  }
}

export interface TestPostgresOptions {
  /**
   * Also listen on TCP at this address (port 5432), taking connections from `clients` (CIDRs)
   * without a password: for tests that put a client behind a network they can cut.
   */
  tcp?: { host: string; clients: string[] };
}

export async function startTestPostgres(opts: TestPostgresOptions = {}): Promise<TestPostgres> {
  const bin = findPostgresBinDir();
  const as = postgresUser();
  const base = baseDir(as);
  sweepOrphans(base);
  const root = mkdtempSync(join(base, DIR_PREFIX));
  writeFileSync(join(root, OWNER_FILE), String(process.pid));
  const dataDir = join(root, 'data');
  const socketDir = join(root, 'sock');
  mkdirSync(socketDir);
  if (as.uid !== undefined && as.gid !== undefined) {
    chownSync(root, as.uid, as.gid);
    chownSync(socketDir, as.uid, as.gid);
  }
  let child: ChildProcess | undefined;
  let stopped = false;

  // Last resort when the process exits without stop(): kill the server, delete its files.
  const onExit = () => {
    if (child?.exitCode === null && child.pid) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {}
    }
    rmSync(root, { recursive: true, force: true });
  };
  process.once('exit', onExit);
  // Killed by a signal (e.g. a test runner timeout): clean up, then die of the same signal.
  const onSignal = (signal: NodeJS.Signals) => {
    onExit();
    removeHooks();
    process.kill(process.pid, signal);
  };
  const removeHooks = () => {
    process.removeListener('exit', onExit);
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const url = (name = 'postgres') =>
    `postgresql://postgres@${encodeURIComponent(socketDir)}/${encodeURIComponent(name)}`;

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    removeHooks();
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child?.once('exit', () => resolve()));
      child.kill('SIGINT'); // fast shutdown: disconnect clients, stop without waiting
      const timer = setTimeout(() => child?.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(root, { recursive: true, force: true });
  };

  try {
    execFileSync(
      join(bin, 'initdb'),
      ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions'],
      { ...as, stdio: ['ignore', 'ignore', 'pipe'], cwd: root },
    );
    if (opts.tcp)
      appendFileSync(join(dataDir, 'pg_hba.conf'), opts.tcp.clients.map((c) => `host all all ${c} trust\n`).join(''));
    const logFile = join(root, 'server.log');
    child = spawn(
      'sh',
      [
        '-c',
        // exec: the shell only redirects the log, so the pid we hold is the postmaster's.
        'exec "$0" "$@" >>"$LOG" 2>&1',
        join(bin, 'postgres'),
        '-D',
        dataDir,
        '-k',
        socketDir,
        '-c',
        `listen_addresses=${opts.tcp?.host ?? ''}`,
        // Throwaway data: durability settings off make the suites fast.
        '-c',
        'fsync=off',
        '-c',
        'synchronous_commit=off',
        '-c',
        'full_page_writes=off',
        '-c',
        'max_connections=100',
      ],
      { ...as, cwd: root, stdio: 'ignore', env: { ...process.env, LOG: logFile } },
    );
    await waitReady(url(), child, logFile);
  } catch (err) {
    const log = (() => {
      try {
        return readFileSync(join(root, 'server.log'), 'utf8').slice(-2000);
      } catch {
        return '';
      }
    })();
    await stop();
    const detail = (err as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`could not start a test PostgreSQL server: ${(err as Error).message}\n${detail}${log}`, {
      cause: err,
    });
  }

  const createDatabase = async (name = `wrenn_test_${process.pid}_${++counter}`) => {
    if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`database name '${name}' must match [a-z_][a-z0-9_]*`);
    const client = new pg.Client({ connectionString: url() });
    await client.connect();
    try {
      await client.query(`CREATE DATABASE ${name}`);
    } finally {
      await client.end();
    }
    return url(name);
  };

  return { socketDir, url, createDatabase, stop };
}

async function waitReady(url: string, child: ChildProcess, logFile: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`postgres exited (${child.exitCode ?? child.signalCode}) during start-up; its log is ${logFile}`);
    }
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.query('select 1');
      await client.end();
      return;
    } catch (err) {
      await client.end().catch(() => {});
      if (Date.now() > deadline)
        throw new Error(`postgres did not accept connections within 30 s: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
