// The leader lease after a network cut, not a death: replica A runs in a network namespace of its
// own and reaches PostgreSQL over a veth pair (TCP); replica B reaches it on its unix socket. A
// holds the lease; then every packet between A and the database is dropped (iptables inside A's
// namespace, which goes with it). A's process lives on and its session looks idle to the server:
// the server must still end that session (the lease sets idle_session_timeout) so B takes the
// lease, A must say it lost the lease (stopping its periodic work) before B says it took it, and
// once the network is back A must be a follower again that takes over when B dies.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { STATE_LOOPS_LOCK_KEY } from '../../src/cluster/leader-lease.js';
import { startTestPostgres, type TestPostgres } from '../pg.js';

const WRENN = new URL('../../../../cli/bin/wrenn.js', import.meta.url).pathname;

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
const quiet = (cmd: string, args: string[]) => {
  try {
    sh(cmd, args);
  } catch {}
};

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Replica {
  proc: ChildProcess;
  /** pino's JSON lines, parsed. */
  lines: { msg?: string; time?: number; held?: boolean }[];
  out: string;
}

/** Starts `wrenn server`; resolves once it printed its admin key. */
async function startReplica(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<Replica & { key: string }> {
  const proc = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const r: Replica = { proc, lines: [], out: '' };
  let partial = '';
  const onData = (d: Buffer) => {
    r.out += d.toString();
    partial += d.toString();
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      try {
        r.lines.push(JSON.parse(line));
      } catch {
        // not a log line (the admin key banner)
      }
    }
  };
  proc.stdout?.on('data', onData);
  proc.stderr?.on('data', onData);
  const key = await until(
    'a replica to print its admin key',
    () => {
      if (proc.exitCode !== null) throw new Error(`replica exited (${proc.exitCode}): ${r.out.slice(-2000)}`);
      return /admin key (\S+)/.exec(r.out)?.[1];
    },
    60_000,
  );
  return { ...r, key };
}

async function kill(p: ChildProcess | undefined): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  p.kill('SIGKILL');
  await exited;
}

describe('leader lease: the holder cut off from PostgreSQL (its process alive)', () => {
  const tag = randomBytes(2).toString('hex');
  const netns = `wlc-${tag}`;
  const hostIf = `wlch${tag}`;
  const inIf = `wlca${tag}`;
  // A /30 of its own (the cluster fixture uses 10.251.x).
  const subnet = `10.252.${Number.parseInt(tag, 16) % 250}`;
  const dbHost = `${subnet}.1`;
  const replicaHost = `${subnet}.2`;
  const root = mkdtempSync(join(tmpdir(), 'wrenn-lease-cut-'));
  let pgServer: TestPostgres;
  let socketUrl: string;
  let a: Replica | undefined;
  let b: Replica | undefined;

  /** Process id in the application_name of the session holding the state loops' lease. */
  const holder = async (): Promise<number | undefined> => {
    const c = new pg.Client({ connectionString: socketUrl });
    await c.connect();
    try {
      const r = await c.query<{ app: string }>(
        `select a.application_name as app from pg_locks l join pg_stat_activity a on a.pid = l.pid
         where l.locktype = 'advisory' and l.granted and l.classid = $1 and l.objid = $2`,
        [Number(STATE_LOOPS_LOCK_KEY >> 32n), Number(STATE_LOOPS_LOCK_KEY & 0xffffffffn)],
      );
      const m = /^wrenn-lease-(\d+)$/.exec(r.rows[0]?.app ?? '');
      return m ? Number(m[1]) : undefined;
    } finally {
      await c.end();
    }
  };
  const logged = (r: Replica | undefined, msg: string) => r?.lines.find((l) => l.msg === msg);
  const cut = (on: boolean) => {
    for (const rule of [
      ['OUTPUT', '-d', dbHost],
      ['INPUT', '-s', dbHost],
    ])
      sh('ip', ['netns', 'exec', netns, 'iptables', on ? '-I' : '-D', ...rule, '-j', 'DROP']);
  };

  before(async () => {
    sh('ip', ['netns', 'add', netns]);
    sh('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', inIf]);
    sh('ip', ['link', 'set', inIf, 'netns', netns]);
    sh('ip', ['addr', 'add', `${dbHost}/30`, 'dev', hostIf]);
    sh('ip', ['link', 'set', hostIf, 'up']);
    sh('ip', ['-n', netns, 'addr', 'add', `${replicaHost}/30`, 'dev', inIf]);
    sh('ip', ['-n', netns, 'link', 'set', inIf, 'up']);
    sh('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    pgServer = await startTestPostgres({ tcp: { host: dbHost, clients: [`${replicaHost}/32`] } });
    socketUrl = await pgServer.createDatabase();
  });
  after(async () => {
    await kill(a?.proc);
    await kill(b?.proc);
    await pgServer?.stop();
    quiet('ip', ['netns', 'del', netns]);
    quiet('ip', ['link', 'del', hostIf]);
    rmSync(root, { recursive: true, force: true });
  });

  it('the other replica takes over, the cut holder stops first, and rejoins as a follower', async () => {
    const dbName = new URL(socketUrl).pathname.slice(1);
    const common = { WRENN_LEASE_RETRY_MS: '500', WRENN_LOG_LEVEL: 'info' };
    const startedA = await startReplica(
      'nsenter',
      [
        `--net=/run/netns/${netns}`,
        process.execPath,
        WRENN,
        'server',
        '--listen',
        `${replicaHost}:8000`,
        '--data-dir',
        join(root, 'a'),
      ],
      { ...common, DATABASE_URL: `postgresql://postgres@${dbHost}:5432/${dbName}` },
    );
    a = startedA;
    await until('replica A to hold the lease', async () => ((await holder()) === a?.proc.pid ? true : undefined));
    b = await startReplica(
      process.execPath,
      [WRENN, 'server', '--listen', '127.0.0.1:0', '--data-dir', join(root, 'b')],
      { ...common, DATABASE_URL: socketUrl, WRENN_API_KEY: startedA.key },
    );
    assert.equal(await holder(), a.proc.pid, 'B follows while A holds');

    const cutAt = Date.now();
    cut(true);
    const lost = await until('A to say it lost the lease', () => logged(a, 'leader lease lost'));
    await until('B to hold the lease', async () => ((await holder()) === b?.proc.pid ? true : undefined));
    const taken = await until('B to log the lease taken', () => logged(b, 'leader lease taken: running periodic work'));
    assert.equal(a.proc.exitCode, null, 'A is still running');
    assert.ok(
      (lost.time ?? Infinity) <= (taken.time ?? 0),
      `A stopped its periodic work (${lost.time}) before B started it (${taken.time})`,
    );
    process.stderr.write(
      `lease after the cut: A lost it after ${(lost.time ?? 0) - cutAt} ms, B took it after ${(taken.time ?? 0) - cutAt} ms\n`,
    );

    // Network back: A is a follower (B holds), and takes over when B dies.
    cut(false);
    const lostCount = a.lines.filter((l) => l.msg === 'leader lease lost').length;
    await kill(b.proc);
    await until('A to hold the lease again', async () => ((await holder()) === a?.proc.pid ? true : undefined));
    assert.equal(a.lines.filter((l) => l.msg === 'leader lease lost').length, lostCount, 'A did not hold it meanwhile');
  });
});
