// A cluster on one machine, all real processes: a throwaway PostgreSQL, `wrenn server` replicas on
// loopback, host agents each in a network namespace of its own with its own address (a veth pair
// per agent, 10.251.<i>.2 inside, 10.251.<i>.1 on the machine), and HAProxy in TCP mode in front
// of the replicas. Agents serve TLS (their own self-signed certificates, pinned by the control
// plane at registration, as `wrenn agent` does by default; `agentTls: false` for plain h2c) and
// register through the API with one-time tokens. stop() removes all of it
// (processes, capsules, namespaces, veths, data dirs, the PostgreSQL data dir) and is also run on
// a failed start.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestPostgres, type TestPostgres } from '../pg.js';

const WRENN = new URL('../../../../cli/bin/wrenn.js', import.meta.url).pathname;
const AGENT_MAIN = new URL('./agent-process.js', import.meta.url).pathname;
const AGENT_PORT = 5007;

export interface Replica {
  index: number;
  url: string;
  port: number;
  proc: ChildProcess | undefined;
  start(): Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export interface ClusterAgent {
  index: number;
  tag: string;
  netns: string;
  address: string;
  hostId: string;
  secret: string;
  /** The certificate it serves and registered (PEM); undefined for a plain agent. */
  tlsCert: string | undefined;
  dataDir: string;
  proc: ChildProcess | undefined;
  start(): Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export interface Cluster {
  pg: TestPostgres;
  databaseUrl: string;
  adminKey: string;
  replicas: Replica[];
  agents: ClusterAgent[];
  /** HAProxy's address in front of every replica. */
  balancerUrl: string;
  stop(): Promise<void>;
}

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
const quiet = (cmd: string, args: string[]) => {
  try {
    sh(cmd, args);
  } catch {}
};

/** A simulated host's network: its namespace and the veth pair joining it to the machine. */
export interface SimulatedHost {
  netns: string;
  /** <subnet>.1, the machine's end of the veth. */
  machineAddress: string;
  /** <subnet>.2, the address inside the namespace. */
  address: string;
  /** Deletes the namespace and the veth (whatever of them exists); never throws. */
  remove(): void;
}

/**
 * A network namespace `netns` joined to the machine by a veth pair (`hostIf` on the machine with
 * <subnet>.1/30, `inIf` inside with <subnet>.2/30, lo up, default route through .1): an agent
 * started in it (nsenter --net=/run/netns/<netns>) is a host of its own. A set-up that fails part
 * way removes what it made before throwing; remove() takes it all away.
 */
export function simulatedHost(o: { netns: string; hostIf: string; inIf: string; subnet: string }): SimulatedHost {
  if (!/^\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(o.subnet)) throw new Error(`subnet "${o.subnet}" is not a.b.c`);
  const remove = () => {
    quiet('ip', ['netns', 'del', o.netns]);
    quiet('ip', ['link', 'del', o.hostIf]);
  };
  try {
    sh('ip', ['netns', 'add', o.netns]);
    sh('ip', ['link', 'add', o.hostIf, 'type', 'veth', 'peer', 'name', o.inIf]);
    sh('ip', ['link', 'set', o.inIf, 'netns', o.netns]);
    sh('ip', ['addr', 'add', `${o.subnet}.1/30`, 'dev', o.hostIf]);
    sh('ip', ['link', 'set', o.hostIf, 'up']);
    sh('ip', ['-n', o.netns, 'addr', 'add', `${o.subnet}.2/30`, 'dev', o.inIf]);
    sh('ip', ['-n', o.netns, 'link', 'set', o.inIf, 'up']);
    sh('ip', ['-n', o.netns, 'link', 'set', 'lo', 'up']);
    sh('ip', ['-n', o.netns, 'route', 'add', 'default', 'via', `${o.subnet}.1`]);
  } catch (err) {
    remove();
    throw err;
  }
  return { netns: o.netns, machineAddress: `${o.subnet}.1`, address: `${o.subnet}.2`, remove };
}

/** A port free on loopback now (the caller binds it soon after). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

/** Resolves with the first stdout/stderr line matching `re`, rejects if the process exits first. */
function waitLine(p: ChildProcess, re: RegExp, what: string, timeoutMs = 120_000): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(
      () => done(new Error(`${what}: no "${re}" within ${timeoutMs} ms; output:\n${buf.slice(-3000)}`)),
      timeoutMs,
    );
    const onData = (d: Buffer) => {
      buf += d.toString();
      const m = re.exec(buf);
      if (m) done(undefined, m);
    };
    const onExit = (code: number | null, sig: string | null) =>
      done(new Error(`${what} exited (${code ?? sig}) before "${re}"; output:\n${buf.slice(-3000)}`));
    const done = (err?: Error, m?: RegExpMatchArray) => {
      clearTimeout(timer);
      p.stdout?.off('data', onData);
      p.stderr?.off('data', onData);
      p.off('exit', onExit);
      if (err) reject(err);
      else resolve(m as RegExpMatchArray);
    };
    p.stdout?.on('data', onData);
    p.stderr?.on('data', onData);
    p.once('exit', onExit);
  });
}

/** Stops a child: `signal`, then SIGKILL after `graceMs`; resolves once it exited. */
export async function killProc(
  p: ChildProcess | undefined,
  signal: NodeJS.Signals = 'SIGTERM',
  graceMs = 15_000,
): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  p.kill(signal);
  const t = setTimeout(() => p.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(t);
}

/** Keeps a child's output flowing (so pipes never fill) and, with WRENN_TEST_LOG, visible. */
function drain(p: ChildProcess, name: string): void {
  const show = process.env.WRENN_TEST_LOG !== undefined;
  p.stdout?.on('data', (d: Buffer) => show && process.stderr.write(`[${name}] ${d}`));
  p.stderr?.on('data', (d: Buffer) => show && process.stderr.write(`[${name}] ${d}`));
}

async function post(url: string, body: unknown, key?: string): Promise<Record<string, unknown>> {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { 'x-api-key': key } : {}) },
    body: JSON.stringify(body),
  });
  const j = (await r.json()) as Record<string, unknown>;
  if (r.status >= 300) throw new Error(`POST ${url}: ${r.status} ${JSON.stringify(j)}`);
  return j;
}

export async function startCluster(o: { replicas: number; agents: number; agentTls?: boolean }): Promise<Cluster> {
  const agentTls = o.agentTls ?? true;
  const root = mkdtempSync(join(tmpdir(), 'wrenn-cluster-'));
  const id = randomBytes(2).toString('hex');
  const stops: (() => Promise<void> | void)[] = [() => rmSync(root, { recursive: true, force: true })];
  const stop = async () => {
    for (const s of stops.splice(0).reverse()) await Promise.resolve(s()).catch(() => {});
  };
  try {
    const pg = await startTestPostgres();
    stops.push(() => pg.stop());
    const databaseUrl = await pg.createDatabase();

    // Replicas.
    let adminKey = '';
    const replicas: Replica[] = [];
    for (let i = 0; i < o.replicas; i++) {
      const port = await freePort();
      const dataDir = join(root, `cp${i}`);
      const r: Replica = {
        index: i,
        port,
        url: `http://127.0.0.1:${port}`,
        proc: undefined,
        async start() {
          const p = spawn(process.execPath, [WRENN, 'server', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir], {
            env: {
              ...process.env,
              DATABASE_URL: databaseUrl,
              WRENN_LEASE_RETRY_MS: '500',
              WRENN_LOG_LEVEL: process.env.WRENN_TEST_LOG ?? 'warn',
              ...(adminKey ? { WRENN_API_KEY: adminKey } : {}),
            },
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          this.proc = p;
          const m = await waitLine(p, /admin key (\S+)/, `replica ${i}`);
          drain(p, `cp${i}`);
          if (!adminKey) adminKey = m[1] as string;
        },
        async kill(signal) {
          await killProc(this.proc, signal);
        },
      };
      stops.push(() => r.kill('SIGKILL'));
      await r.start();
      replicas.push(r);
    }

    // HAProxy in front.
    const lbPort = await freePort();
    const cfg = join(root, 'haproxy.cfg');
    writeFileSync(cfg, balancerConfig(lbPort, replicas));
    const haproxy = spawn('haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
    drain(haproxy, 'haproxy');
    stops.push(() => killProc(haproxy, 'SIGKILL'));
    const balancerUrl = `http://127.0.0.1:${lbPort}`;
    for (let t = 0; ; t++) {
      const ok = await fetch(`${balancerUrl}/openapi.yaml`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      if (t > 100 || haproxy.exitCode !== null) throw new Error('HAProxy did not start');
      await new Promise((r) => setTimeout(r, 100));
    }

    // Agents, each in its own network namespace.
    const agents: ClusterAgent[] = [];
    for (let i = 0; i < o.agents; i++) {
      const tag = `${'xy'[i] ?? 'z'}${id}`.slice(0, 5);
      const netns = `wcl-${tag}`;
      const host = simulatedHost({ netns, hostIf: `wclh${tag}`, inIf: `wcla${tag}`, subnet: `10.251.${i}` });
      stops.push(() => host.remove());
      const dataDir = join(root, `agent${i}`);
      const secret = randomBytes(24).toString('hex');
      const agentEnv: NodeJS.ProcessEnv = {
        ...process.env,
        WRENN_AGENT_SECRET: secret,
        CLUSTER_AGENT_SLOT: String(10 + i),
        CLUSTER_AGENT_TAG: tag,
        CLUSTER_AGENT_DIR: dataDir,
        CLUSTER_AGENT_HOST: host.address,
        CLUSTER_AGENT_PORT: String(AGENT_PORT),
        ...(agentTls ? { CLUSTER_AGENT_TLS: '1' } : {}),
      };
      const a: ClusterAgent = {
        index: i,
        tag,
        netns,
        address: `${agentTls ? 'https' : 'http'}://${host.address}:${AGENT_PORT}`,
        hostId: '',
        secret,
        tlsCert: undefined,
        dataDir,
        proc: undefined,
        async start() {
          const p = spawn('nsenter', [`--net=/run/netns/${netns}`, process.execPath, AGENT_MAIN], {
            env: agentEnv,
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          this.proc = p;
          const m = await waitLine(p, /ready (\S+)/, `agent ${i}`);
          drain(p, `agent${i}`);
          this.hostId = m[1] as string;
          if (agentTls) this.tlsCert = readFileSync(join(dataDir, 'agent-tls', 'agent.crt'), 'utf8');
        },
        async kill(signal) {
          await killProc(this.proc, signal);
        },
      };
      // Before its namespace goes: destroy its capsules (a killed agent leaves them running).
      stops.push(() => destroyAgentLeftovers(a, agentEnv));
      await a.start();
      const token = (await post(`${balancerUrl}/v1/hosts/tokens`, {}, adminKey)).token as string;
      await post(`${balancerUrl}/v1/hosts/register`, {
        token,
        address: a.address,
        agent_secret: secret,
        ...(a.tlsCert ? { agent_tls_cert: a.tlsCert } : {}),
      });
      agents.push(a);
    }
    return { pg, databaseUrl, adminKey, replicas, agents, balancerUrl, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * HAProxy in HTTP mode, as README's "Several control planes and hosts" shows: a request that never
 * reached a replica is sent to another; one that reached a replica which died before answering is
 * replayed on another when that is safe (reads, deletes, and creates, which the balancer gives an
 * Idempotency-Key so the replay finds the capsule the first attempt made); anything else fails.
 */
export function balancerConfig(port: number, replicas: readonly { index: number; port: number }[]): string {
  return [
    'global',
    '  maxconn 512',
    // Shown with WRENN_TEST_LOG (drain()): one line per request, with its retries and termination state.
    '  log stderr format raw local0',
    'defaults',
    '  mode http',
    '  log global',
    '  option httplog',
    '  timeout connect 2s',
    '  timeout client 10m',
    '  timeout server 10m',
    '  timeout tunnel 10m',
    '  timeout http-keep-alive 30s',
    // A connection to a replica carries one request: none sits idle, bound to a client's
    // connection, when its replica dies.
    '  option http-server-close',
    // The whole request in HAProxy's buffer before it goes to a replica, so it can be replayed
    // (the e2b SDK sends its JSON bodies chunked).
    '  option http-buffer-request',
    '  retries 3',
    '  option redispatch 1',
    '  retry-on conn-failure empty-response',
    'frontend fe',
    `  bind 127.0.0.1:${port}`,
    '  acl create path /sandboxes /v2/sandboxes /v1/capsules',
    '  acl keyed req.hdr(idempotency-key) -m found',
    '  http-request set-header Idempotency-Key %[uuid] if METH_POST create !keyed',
    '  http-request disable-l7-retry unless METH_GET || METH_HEAD || METH_DELETE || keyed',
    '  default_backend replicas',
    'backend replicas',
    '  balance roundrobin',
    ...replicas.map((r) => `  server cp${r.index} 127.0.0.1:${r.port} check inter 300 fall 2 rise 1`),
    '',
  ].join('\n');
}

/** Takes an agent's capsules back in a fresh agent process on its data dir and destroys them, its networks and cgroups. */
async function destroyAgentLeftovers(a: ClusterAgent, env: NodeJS.ProcessEnv): Promise<void> {
  await killProc(a.proc, 'SIGKILL');
  const p = spawn('nsenter', [`--net=/run/netns/${a.netns}`, process.execPath, AGENT_MAIN], {
    env: { ...env, CLUSTER_AGENT_DESTROY: '1' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  p.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  // A guard only: a teardown that hangs must not hold the whole test run (seen once in CI before the
  // agent's close() ended connections accepted mid-handshake: the teardown process still served a
  // replica's polls after 20 min). Killed, it says so with its log.
  const deadline = setTimeout(() => {
    process.stderr.write(`cluster fixture: agent ${a.index} teardown still running after 90 s; killed\n`);
    p.kill('SIGKILL');
  }, 90_000);
  const code = await new Promise<number | null>((r) => p.once('exit', (c) => r(c)));
  clearTimeout(deadline);
  if (code !== 0)
    process.stderr.write(`cluster fixture: agent ${a.index} teardown exited ${code}: ${err.slice(-2000)}\n`);
}
