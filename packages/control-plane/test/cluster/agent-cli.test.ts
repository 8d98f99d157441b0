// `wrenn agent` end to end, started as a user starts it: the real CLI in a network namespace of its
// own (a simulated host with its own address, joined to the machine by a veth pair), registering
// itself with a `wrenn server` the test starts (plain HTTP, and HTTPS with an operator's
// certificate that the agent trusts through --control-plane-ca), serving TLS (the default) or
// plain (--tls off). Each run checks that it registers, that heartbeats arrive, and that a capsule
// created through the API on it runs a command and is reached through the sandbox proxy. With TLS,
// the control plane pins the certificate: an agent restarted with a new certificate refuses to run
// without a new token (and leaves nothing behind), registers with one, and its capsule is reached
// again at once; restarted again it reuses its registration. Everything the agents made
// (capsules, their namespaces, mounts, cgroups, the namespace and veth of the test) is removed even
// when a check fails.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { after, before, test } from 'node:test';
import tls from 'node:tls';
import { Agent, fetch as undiciFetch } from 'undici';
import { operatorCertificate } from '../operator-certificate.js';
import { freePort, killProc, type SimulatedHost, simulatedHost } from './fixture.js';

const WRENN = new URL('../../../../cli/bin/wrenn.js', import.meta.url).pathname;
const SWEEP = new URL('./cli-agent-sweep.js', import.meta.url).pathname;
const AGENT_PORT = 5007;

const id = randomBytes(2).toString('hex');
const netns = `wag-${id}`;
// The agents' own names on the machine (capsule namespaces, cgroup parent): never another's.
const prefix = `q${Array.from(randomBytes(3), (b) => String.fromCharCode(97 + (b % 26))).join('')}`;
const root = mkdtempSync(join(tmpdir(), 'wrenn-agent-cli-'));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The children's environment: this machine's, without any Wrenn setting of the caller's. */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(WRENN_|DATABASE_URL$|NODE_EXTRA_CA_CERTS$)/.test(k) && k !== 'WRENN_REGISTRY_MIRROR') continue;
    env[k] = v;
  }
  return { ...env, WRENN_LOG_LEVEL: process.env.WRENN_TEST_LOG ?? 'warn', ...extra };
}

/** A stop with time for an agent's own shutdown (SIGKILL after 30 s). */
const stopProc = (p: ChildProcess | undefined) => killProc(p, 'SIGTERM', 30_000);

/** The agents' simulated host: its own network namespace on a free 10.253.x.0/30. */
let simHost: SimulatedHost;

before(() => {
  const used = execFileSync('ip', ['-o', '-4', 'addr'], { encoding: 'utf8' });
  let subnet = '';
  for (let x = Number.parseInt(id, 16) % 200; !subnet; x++) {
    if (x > 250) throw new Error('no free 10.253.x.0/30 for the agent namespace');
    if (!used.includes(`10.253.${x}.`)) subnet = `10.253.${x}`;
  }
  simHost = simulatedHost({ netns, hostIf: `wagh${id}`, inIf: `waga${id}`, subnet });
});

after(() => {
  simHost?.remove();
  rmSync(root, { recursive: true, force: true });
  const left = readdirSync('/run/netns').filter((n) => n.startsWith(`${prefix}-`));
  assert.deepEqual(left, [], 'the agents left no capsule network namespace behind');
});

/** Collects a child's output; `wait(re)` resolves with the first match, rejects if it exits first. */
function watch(p: ChildProcess, name: string) {
  let out = '';
  const show = process.env.WRENN_TEST_LOG !== undefined;
  const onData = (d: Buffer) => {
    out += d.toString();
    if (show) process.stderr.write(`[${name}] ${d}`);
  };
  p.stdout?.on('data', onData);
  p.stderr?.on('data', onData);
  const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
  return {
    output: () => out,
    exited,
    async wait(re: RegExp, timeoutMs = 180_000): Promise<RegExpMatchArray> {
      for (const t0 = Date.now(); ; ) {
        const m = re.exec(out);
        if (m) return m;
        if (p.exitCode !== null || p.signalCode !== null)
          throw new Error(`${name} exited (${p.exitCode ?? p.signalCode}) before "${re}":\n${out.slice(-3000)}`);
        if (Date.now() - t0 > timeoutMs)
          throw new Error(`${name}: no "${re}" within ${timeoutMs} ms:\n${out.slice(-3000)}`);
        await sleep(100);
      }
    },
  };
}

interface Run {
  cpUrl: string;
  adminKey: string;
  call(method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }>;
  /** `wrenn agent` with these extra arguments; resolves once it printed its registration. */
  startAgent(args: string[]): Promise<{ proc: ChildProcess; line: string }>;
  /** `wrenn agent` expected to stop at start: its exit code and output. */
  agentFails(args: string[]): Promise<{ code: number | null; output: string }>;
  agentDir: string;
}

/** A control plane and agent data dir for one scenario; everything goes in the end, even on failure. */
async function scenario(o: { https: boolean }, body: (r: Run) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(root, 'run-'));
  const agentDir = join(dir, 'agent');
  const port = await freePort();
  const cpHost = simHost.machineAddress;
  const certs = o.https ? operatorCertificate(dir, cpHost) : undefined;
  const cpUrl = `${o.https ? 'https' : 'http'}://${cpHost}:${port}`;
  const dispatcher = new Agent(certs ? { connect: { ca: readFileSync(certs.caFile, 'utf8') } } : {});
  const agents: ChildProcess[] = [];
  let cp: ChildProcess | undefined;
  let adminKey = '';
  const capsules = new Set<string>();
  const call: Run['call'] = async (method, path, reqBody) => {
    const res = await undiciFetch(`${cpUrl}${path}`, {
      method,
      dispatcher,
      headers: { 'x-api-key': adminKey, ...(reqBody !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(reqBody !== undefined ? { body: JSON.stringify(reqBody) } : {}),
    });
    const text = await res.text();
    let json: Record<string, unknown> = {};
    try {
      json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    } catch {
      json = { text };
    }
    if (method === 'POST' && path === '/v1/capsules' && typeof json.id === 'string') capsules.add(json.id);
    return { status: res.status, json };
  };
  const agentArgs = (args: string[]) => [
    `--net=/run/netns/${netns}`,
    process.execPath,
    WRENN,
    'agent',
    '--listen',
    `${simHost.address}:${AGENT_PORT}`,
    '--data-dir',
    agentDir,
    '--control-plane',
    cpUrl,
    '--warm-pool',
    'minimal=0',
    ...args,
  ];
  const agentEnv = childEnv({ WRENN_NAME_PREFIX: prefix });
  try {
    cp = spawn(
      process.execPath,
      [
        WRENN,
        'server',
        '--listen',
        `${cpHost}:${port}`,
        '--data-dir',
        join(dir, 'cp'),
        ...(certs ? ['--tls-cert', certs.certFile, '--tls-key', certs.keyFile] : []),
      ],
      { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    adminKey = (await watch(cp, 'cp').wait(/admin key (\S+)/, 60_000))[1] as string;
    await body({
      cpUrl,
      adminKey,
      call,
      agentDir,
      async startAgent(args) {
        const proc = spawn('nsenter', agentArgs(args), { env: agentEnv, stdio: ['ignore', 'pipe', 'pipe'] });
        agents.push(proc);
        const m = await watch(proc, 'agent').wait(/registered with \S+ as host-\S+.*/);
        return { proc, line: m[0] };
      },
      async agentFails(args) {
        const proc = spawn('nsenter', agentArgs(args), { env: agentEnv, stdio: ['ignore', 'pipe', 'pipe'] });
        agents.push(proc);
        const w = watch(proc, 'agent');
        let timer: NodeJS.Timeout | undefined;
        const code = await Promise.race([
          w.exited,
          new Promise<'timeout'>((r) => {
            timer = setTimeout(() => r('timeout'), 180_000);
          }),
        ]);
        clearTimeout(timer);
        if (code === 'timeout') throw new Error(`the agent did not stop:\n${w.output().slice(-3000)}`);
        return { code, output: w.output() };
      },
    });
  } finally {
    for (const c of capsules) await call('DELETE', `/v1/capsules/${c}`).catch(() => undefined);
    for (const a of agents) await stopProc(a);
    // Whatever is left (a failed check, a killed agent): taken back in its namespace and destroyed.
    const sweep = spawn('nsenter', [`--net=/run/netns/${netns}`, process.execPath, SWEEP, agentDir], {
      env: agentEnv,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const w = watch(sweep, 'sweep');
    const code = await w.exited;
    if (code !== 0) process.stderr.write(`agent-cli: sweep exited ${code}: ${w.output().slice(-2000)}\n`);
    await stopProc(cp);
    await dispatcher.close().catch(() => undefined);
  }
}

async function newToken(r: Run): Promise<string> {
  const t = await r.call('POST', '/v1/hosts/tokens', {});
  assert.equal(t.status, 201, JSON.stringify(t.json));
  return t.json.token as string;
}

type HostJson = { id: string; status: string; last_heartbeat_at: string | null };
async function host(r: Run, hostId: string): Promise<HostJson> {
  const list = await r.call('GET', '/v1/hosts');
  assert.equal(list.status, 200, JSON.stringify(list.json));
  const h = (list.json.hosts as HostJson[]).find((x) => x.id === hostId);
  assert.ok(h, `host ${hostId} is listed: ${JSON.stringify(list.json)}`);
  return h;
}

/** Registered, online, and heartbeats keep arriving (the control plane pulls them over the link). */
async function registeredAndBeating(r: Run, line: string): Promise<string> {
  const hostId = /as (host-\S+)/.exec(line)?.[1] ?? '';
  const first = await host(r, hostId);
  assert.equal(first.status, 'online');
  for (let i = 0; ; i++) {
    const h = await host(r, hostId);
    if (h.last_heartbeat_at && h.last_heartbeat_at !== first.last_heartbeat_at) break;
    assert.ok(i < 150, `no new heartbeat of ${hostId} after ${first.last_heartbeat_at}`);
    await sleep(200);
  }
  return hostId;
}

/** A command through the API (an RPC to the agent) and envd's /health through the sandbox proxy (its /proxy hop). */
async function reachCapsule(r: Run, capsuleId: string, word: string): Promise<void> {
  const ex = await r.call('POST', `/v1/capsules/${capsuleId}/exec`, { cmd: `echo ${word}-$((6*7))` });
  assert.equal(ex.status, 200, JSON.stringify(ex.json));
  assert.equal(ex.json.stdout, `${word}-42\n`);
  const health = await r.call('GET', `/proxy/${capsuleId}/49983/health`);
  assert.ok(
    health.status >= 200 && health.status < 300,
    `envd through the proxy: ${health.status} ${JSON.stringify(health.json)}`,
  );
}

async function createOn(r: Run, hostId: string): Promise<string> {
  const c = await r.call('POST', '/v1/capsules', { template: 'minimal', timeout_sec: 600 });
  assert.equal(c.status, 201, JSON.stringify(c.json));
  assert.equal(c.json.host_id, hostId, 'the capsule runs on the registered agent');
  return c.json.id as string;
}

test('wrenn agent (TLS) registers with a plain control plane, serves a capsule; a new certificate needs a new token', async () => {
  await scenario({ https: false }, async (r) => {
    const { proc, line } = await r.startAgent(['--token', await newToken(r)]);
    assert.doesNotMatch(line, /remembered/);
    const hostId = await registeredAndBeating(r, line);
    const capsule = await createOn(r, hostId);
    await reachCapsule(r, capsule, 'tls');

    // A new certificate (the old one removed, as after a reinstall): the agent refuses to run
    // without a token, since the control plane would refuse it, and stops cleanly.
    await stopProc(proc);
    rmSync(join(r.agentDir, 'agent-tls'), { recursive: true, force: true });
    const ours = () => readdirSync('/run/netns').filter((n) => n.startsWith(`${prefix}-`));
    const kept = ours(); // the capsule's own network stays while its agent is down
    const refused = await r.agentFails([]);
    assert.equal(refused.code, 1, refused.output);
    assert.match(refused.output, /TLS certificate changed since it registered.*pass --token/);
    assert.deepEqual(ours(), kept, 'the refused agent took the networks it pre-built with it');

    // With a token it registers the new certificate; the capsule it kept is reached at once.
    const again = await r.startAgent(['--token', await newToken(r)]);
    assert.equal(/as (host-\S+)/.exec(again.line)?.[1], hostId, 'the same host');
    await reachCapsule(r, capsule, 'repinned');
    await registeredAndBeating(r, again.line);

    // A plain restart (same certificate) reuses the registration: no token needed.
    await stopProc(again.proc);
    const plain = await r.startAgent([]);
    assert.match(plain.line, /remembered/);
    await reachCapsule(r, capsule, 'restarted');
  });
});

test('wrenn agent registers with an https control plane given --control-plane-ca, and only then', async () => {
  await scenario({ https: true }, async (r) => {
    const token = await newToken(r);
    const untrusted = await r.agentFails(['--token', token]);
    assert.equal(untrusted.code, 1, untrusted.output);
    assert.match(untrusted.output, /not trusted: pass --control-plane-ca/);
    const { line } = await r.startAgent(['--token', token, '--control-plane-ca', join(r.agentDir, '..', 'ca.crt')]);
    const hostId = await registeredAndBeating(r, line);
    await reachCapsule(r, await createOn(r, hostId), 'https');
  });
});

test('wrenn agent --tls off registers a plain http:// address and serves a capsule', async () => {
  await scenario({ https: false }, async (r) => {
    const { line } = await r.startAgent(['--tls', 'off', '--token', await newToken(r)]);
    const hostId = await registeredAndBeating(r, line);
    const list = await r.call('GET', '/v1/hosts');
    assert.ok(JSON.stringify(list.json).includes(hostId));
    await reachCapsule(r, await createOn(r, hostId), 'plain');
  });
});

/**
 * A TLS connection to the agent left in the middle of its handshake, as a control plane's is when
 * the agent begins to stop: the agent accepted it and answered the client's hello; the client's
 * last handshake flight is held until finish(), which then polls GET /health over h2 every 2 s, as
 * a replica polls GetHostInfo, counting the answers.
 */
async function midHandshake(host: string, port: number) {
  const raw = net.connect(port, host);
  raw.on('error', () => undefined);
  let firstFlightSent = false;
  let released = false;
  const held: Buffer[] = [];
  const pipe = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      if (firstFlightSent && !released) held.push(chunk);
      else raw.write(chunk);
      firstFlightSent = true;
      cb();
    },
  });
  const serverAnswered = new Promise<void>((resolve, reject) => {
    raw.once('data', () => resolve());
    raw.once('close', () => reject(new Error('the agent closed the connection before answering its TLS hello')));
  });
  raw.on('data', (d: Buffer) => pipe.push(d));
  raw.once('close', () => pipe.destroy());
  const secure = tls.connect({ socket: pipe, rejectUnauthorized: false, ALPNProtocols: ['h2'] });
  secure.on('error', () => undefined);
  await serverAnswered;
  return {
    finish() {
      released = true;
      for (const c of held.splice(0)) raw.write(c);
      let answered = 0;
      let session: http2.ClientHttp2Session | undefined;
      const poll = () => {
        if (raw.destroyed) return;
        session ??= http2.connect(`https://${host}:${port}`, { createConnection: () => secure });
        session.on('error', () => undefined);
        const req = session.request({ ':path': '/health' });
        req.on('response', (h) => {
          if (h[':status'] === 200) answered++;
        });
        req.on('error', () => undefined);
        req.resume();
        req.end();
      };
      poll();
      const timer = setInterval(poll, 2_000);
      return {
        answered: () => answered,
        stop() {
          clearInterval(timer);
          session?.destroy();
          raw.destroy();
        },
      };
    },
  };
}

/** Resolves once nothing listens on host:port any more (connections refused), failing after 60 s. */
async function refused(host: string, port: number): Promise<void> {
  for (const t0 = Date.now(); ; ) {
    const r = await new Promise<string>((resolve) => {
      const s = net.connect(port, host);
      s.once('connect', () => {
        s.destroy();
        resolve('connected');
      });
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });
    if (r === 'ECONNREFUSED') return;
    if (Date.now() - t0 > 60_000) assert.fail(`${host}:${port} still accepts connections 60 s after SIGTERM`);
    await sleep(50);
  }
}

test('wrenn agent stops at SIGTERM while its control plane polls it, a warm-pool boot is under way and a TLS handshake straddles the stop', async () => {
  await scenario({ https: false }, async (r) => {
    const first = await r.startAgent(['--token', await newToken(r)]);
    const hostId = await registeredAndBeating(r, first.line);
    // Built into the agent's images dir by this create; the capsule keeps running across the stop.
    const capsule = await createOn(r, hostId);
    await stopProc(first.proc);
    // A template whose service never listens: its pooled capsule stays booting, waiting for the port.
    const slow = join(r.agentDir, 'images', 'slow');
    mkdirSync(join(slow, 'rootfs'), { recursive: true });
    writeFileSync(
      join(slow, 'manifest.json'),
      JSON.stringify({
        name: 'slow',
        kind: 'snapshot',
        parent: 'minimal',
        layers: ['slow', 'minimal'],
        runtimes: ['namespace'],
        created_at: new Date().toISOString(),
        size: 0,
        readyPorts: [9],
      }),
    );
    const ours = () => readdirSync('/run/netns').filter((n) => n.startsWith(`${prefix}-`));
    const kept = ours();
    const { proc, line } = await r.startAgent(['--warm-pool', 'slow=1']);
    let out = '';
    proc.stdout?.on('data', (d: Buffer) => (out += d));
    proc.stderr?.on('data', (d: Buffer) => (out += d));
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (c) => resolve(c)));
    await registeredAndBeating(r, line);
    const report = (await r.call('GET', '/v1/hosts')).json.hosts as { id: string; warm_pools: unknown[] }[];
    assert.deepEqual(
      report.find((h) => h.id === hostId)?.warm_pools,
      [{ template: 'slow', ready: 0, target: 1 }],
      'the pooled capsule of slow is still booting',
    );

    const straddle = await midHandshake(simHost.address, AGENT_PORT);
    proc.kill('SIGTERM');
    await refused(simHost.address, AGENT_PORT);
    const polls = straddle.finish();
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([
      exited,
      new Promise<'running'>((resolve) => {
        timer = setTimeout(() => resolve('running'), 90_000);
      }),
    ]);
    clearTimeout(timer);
    polls.stop();
    if (code === 'running') {
      proc.kill('SIGKILL');
      assert.fail(
        `wrenn agent still running 90 s after SIGTERM; it answered ${polls.answered()} polls on a connection whose TLS handshake was under way when it began to stop, and a warm-pool boot of slow was waiting for its port:\n${out.slice(-3000)}`,
      );
    }
    assert.equal(code, 0, `wrenn agent exited ${code}:\n${out.slice(-3000)}`);
    assert.equal(polls.answered(), 0, 'no request was answered on that connection after the agent began to stop');
    assert.deepEqual(ours(), kept, "the pooled capsule under way went with the agent; the user's capsule stayed");

    // Started again, it serves the capsule it kept.
    const again = await r.startAgent([]);
    await registeredAndBeating(r, again.line);
    await reachCapsule(r, capsule, 'after-stop');
  });
});
