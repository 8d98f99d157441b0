// Port scanner and forwarder: /proc/net/tcp parsing against real sockets, the forwarding decision,
// and the forwarder itself inside a network namespace this test creates, reached from the host.

import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { ForwardInfo } from '../src/ports/forwarder.js';
import { readTcpListeners } from '../src/ports/index.js';
import { planForwards } from '../src/ports/plan.js';
import { ENVD_PORT } from '../src/version.js';
import { startTestEnvd } from './helpers.js';
import { createTestNetns, type TestNetns } from './netns.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/port-forwarder-child.js', import.meta.url));

function listen(host: string): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen({ host, port: 0 }, () => resolve(s));
  });
}

const portOf = (s: net.Server) => (s.address() as net.AddressInfo).port;

describe('readTcpListeners', () => {
  test('finds listening sockets on loopback, wildcard and IPv6 addresses with their ports', async (t) => {
    const servers = await Promise.all(['127.0.0.1', '::1', '0.0.0.0', '::'].map(listen));
    t.after(() => {
      for (const s of servers) s.close();
    });
    const found = await readTcpListeners();
    for (const [s, address, family] of [
      [servers[0]!, '127.0.0.1', 4],
      [servers[1]!, '::1', 6],
      [servers[2]!, '0.0.0.0', 4],
      [servers[3]!, '::', 6],
    ] as const) {
      assert.ok(
        found.some((l) => l.port === portOf(s) && l.address === address && l.family === family),
        `${address}:${portOf(s)} missing from ${JSON.stringify(found.filter((l) => l.port === portOf(s)))}`,
      );
    }
  });

  test('does not report a port once its server closed', async () => {
    const s = await listen('127.0.0.1');
    const port = portOf(s);
    await new Promise((r) => s.close(r));
    assert.ok(!(await readTcpListeners()).some((l) => l.port === port));
  });
});

describe('planForwards', () => {
  const ext = '10.250.0.2';
  const plan = (listeners: { family: 4 | 6; address: string; port: number }[], forwarded: number[] = []) =>
    Object.fromEntries(
      planForwards({ listeners, external: ext, forwarded: new Set(forwarded), excludePorts: new Set([ENVD_PORT]) }),
    );

  test('forwards loopback-only servers to the address they listen on, IPv4 preferred', () => {
    assert.deepEqual(
      plan([
        { family: 4, address: '127.0.0.1', port: 3000 },
        { family: 6, address: '::1', port: 3001 },
        { family: 6, address: '::ffff:127.0.0.1', port: 3002 },
        { family: 4, address: '127.0.0.53', port: 53 },
        { family: 4, address: '127.0.0.1', port: 3003 },
        { family: 6, address: '::1', port: 3003 },
      ]),
      { 3000: '127.0.0.1', 3001: '::1', 3002: '127.0.0.1', 53: '127.0.0.53', 3003: '127.0.0.1' },
    );
  });

  test('leaves alone servers on every address, envd itself and non-loopback servers', () => {
    assert.deepEqual(
      plan([
        { family: 4, address: '0.0.0.0', port: 8080 },
        { family: 4, address: '127.0.0.1', port: 8081 },
        { family: 6, address: '::', port: 8081 },
        { family: 4, address: '127.0.0.1', port: ENVD_PORT },
        { family: 4, address: ext, port: 9000 },
        { family: 4, address: '127.0.0.1', port: 9001 },
        { family: 4, address: ext, port: 9001 },
      ]),
      {},
    );
  });

  test('keeps its own forward: the listener on the external address is then ours', () => {
    const listeners = [
      { family: 4 as const, address: '127.0.0.1', port: 9001 },
      { family: 4 as const, address: ext, port: 9001 },
    ];
    assert.deepEqual(plan(listeners, [9001]), { 9001: '127.0.0.1' });
  });
});

test('envd outside a capsule starts no port forwarder unless asked', async (t) => {
  if (process.env.WRENN_CAPSULE === '1') t.skip('WRENN_CAPSULE=1 is set in this environment');
  const envd = await startTestEnvd();
  t.after(() => envd.close());
  assert.equal(envd.server.ports, undefined);
});

/** The fixture running inside the namespace, driven by JSON lines. */
class NsChild {
  readonly events: Record<string, unknown>[] = [];
  private nextId = 1;
  private waiters: {
    match: (m: Record<string, unknown>) => boolean;
    resolve: (m: Record<string, unknown>) => void;
    reject: (e: Error) => void;
  }[] = [];
  stderr = '';

  constructor(readonly proc: ChildProcessWithoutNullStreams) {
    proc.stderr.on('data', (d: Buffer) => {
      this.stderr += d.toString();
    });
    proc.once('exit', (code) => {
      for (const w of this.waiters) w.reject(new Error(`fixture exited with ${code}; stderr: ${this.stderr}`));
      this.waiters = [];
    });
    createInterface({ input: proc.stdout }).on('line', (line) => {
      const msg = JSON.parse(line) as Record<string, unknown>;
      this.events.push(msg);
      this.waiters = this.waiters.filter((w) => {
        if (!w.match(msg)) return true;
        w.resolve(msg);
        return false;
      });
    });
  }

  static async start(ns: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<NsChild> {
    const child = new NsChild(spawn('ip', ['netns', 'exec', ns, process.execPath, FIXTURE, ...args], { env }));
    await child.waitFor((m) => m.event === 'ready', 10_000);
    return child;
  }

  waitFor(match: (m: Record<string, unknown>) => boolean, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    const seen = this.events.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`fixture did not answer in ${timeoutMs} ms; stderr: ${this.stderr}`)),
        timeoutMs,
      );
      this.waiters.push({
        match,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }

  async send(cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    this.proc.stdin.write(`${JSON.stringify({ id, ...cmd })}\n`);
    const reply = await this.waitFor((m) => m.id === id);
    if (reply.error) throw new Error(`fixture: ${String(reply.error)}`);
    return reply;
  }

  async forwards(): Promise<ForwardInfo[]> {
    return (await this.send({ cmd: 'scan' })).forwards as ForwardInfo[];
  }

  stop(): Promise<void> {
    if (this.proc.exitCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const kill = setTimeout(() => this.proc.kill('SIGKILL'), 3000);
      this.proc.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      this.proc.stdin.end();
    });
  }
}

/** Connects from the host, reads the greeting, checks the echo; or returns the connect error code. */
function talk(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    let data = '';
    s.setTimeout(5000, () => {
      s.destroy();
      resolve('timeout');
    });
    s.on('data', (d) => {
      data += d.toString();
      if (data.endsWith('ping\n')) s.end();
    });
    s.once('connect', () => s.write('ping\n'));
    s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    s.on('close', () => resolve(data));
  });
}

describe('port forwarder inside a network namespace', {
  skip: process.getuid?.() !== 0 ? 'needs root for ip netns' : false,
}, () => {
  let ns: TestNetns;
  let child: NsChild;
  before(async () => {
    ns = createTestNetns();
    child = await NsChild.start(ns.name, []);
  });
  after(async () => {
    await child?.stop();
    ns?.destroy();
  });

  test('a server bound to 127.0.0.1 is reachable from the host at the namespace address, same port', async () => {
    await child.send({ cmd: 'listen', host: '127.0.0.1', port: 3000 });
    assert.equal(await talk(ns.nsIp, 3000), 'ECONNREFUSED', 'reachable before any scan: the test would prove nothing');
    const forwards = await child.forwards();
    assert.deepEqual(
      forwards.find((f) => f.port === 3000),
      { port: 3000, address: ns.nsIp, target: '127.0.0.1' },
    );
    assert.equal(await talk(ns.nsIp, 3000), 'hello from 127.0.0.1:3000\nping\n');
  });

  test('a server bound to ::1 only is forwarded to ::1', async () => {
    await child.send({ cmd: 'listen', host: '::1', port: 3001 });
    const forwards = await child.forwards();
    assert.deepEqual(
      forwards.find((f) => f.port === 3001),
      { port: 3001, address: ns.nsIp, target: '::1' },
    );
    assert.equal(await talk(ns.nsIp, 3001), 'hello from ::1:3001\nping\n');
  });

  test('a server on 0.0.0.0 gets no forwarder and is reachable directly', async () => {
    await child.send({ cmd: 'listen', host: '0.0.0.0', port: 3002 });
    const forwards = await child.forwards();
    assert.equal(
      forwards.find((f) => f.port === 3002),
      undefined,
    );
    assert.equal(await talk(ns.nsIp, 3002), 'hello from 0.0.0.0:3002\nping\n');
  });

  test("envd's port 49983 is never forwarded", async () => {
    await child.send({ cmd: 'listen', host: '127.0.0.1', port: ENVD_PORT });
    const forwards = await child.forwards();
    assert.equal(
      forwards.find((f) => f.port === ENVD_PORT),
      undefined,
    );
    assert.equal(await talk(ns.nsIp, ENVD_PORT), 'ECONNREFUSED');
  });

  test('the forwarder stops when the server goes away', async () => {
    await child.send({ cmd: 'close', port: 3000 });
    const forwards = await child.forwards();
    assert.equal(
      forwards.find((f) => f.port === 3000),
      undefined,
    );
    assert.equal(await talk(ns.nsIp, 3000), 'ECONNREFUSED');
  });

  test("the namespace's TCP6 socket count rises when a server listens on ::1 and falls when it closes", async () => {
    // Only the IPv6 count: the forwarder's own sockets (on the IPv4 namespace address) move the other.
    const tcp6 = async () => Number(((await child.send({ cmd: 'sockstat' })).key as string).split(' ')[1]);
    const before = await tcp6();
    assert.ok(Number.isInteger(before), 'sockstat6 has a TCP6 line');
    await child.send({ cmd: 'listen', host: '::1', port: 3010 });
    assert.equal(await tcp6(), before + 1);
    await child.send({ cmd: 'close', port: 3010 });
    assert.equal(await tcp6(), before);
  });

  test('the periodic scan finds a new server without being asked', async () => {
    await child.send({ cmd: 'listen', host: '127.0.0.1', port: 3004 });
    const change = await child.waitFor(
      (m) => m.event === 'change' && (m.forwards as ForwardInfo[]).some((f) => f.port === 3004),
    );
    assert.ok(change);
    assert.equal(await talk(ns.nsIp, 3004), 'hello from 127.0.0.1:3004\nping\n');
  });

  test('a server replaced by another within one beat (socket counts unchanged) is found unasked', async () => {
    // Close and listen back to back: the counts may be equal at the next beat; the resync finds it.
    await Promise.all([
      child.send({ cmd: 'close', port: 3004 }),
      child.send({ cmd: 'listen', host: '127.0.0.1', port: 3005 }),
    ]);
    await child.waitFor(
      (m) =>
        m.event === 'change' &&
        (m.forwards as ForwardInfo[]).some((f) => f.port === 3005) &&
        !(m.forwards as ForwardInfo[]).some((f) => f.port === 3004),
    );
    assert.equal(await talk(ns.nsIp, 3005), 'hello from 127.0.0.1:3005\nping\n');
    assert.equal(await talk(ns.nsIp, 3004), 'ECONNREFUSED');
  });
});

describe('envd in a capsule (WRENN_CAPSULE=1) runs the forwarder', {
  skip: process.getuid?.() !== 0 ? 'needs root for ip netns' : false,
}, () => {
  let ns: TestNetns;
  let child: NsChild;
  before(async () => {
    ns = createTestNetns();
    const env = { ...process.env, WRENN_CAPSULE: '1' };
    child = await NsChild.start(ns.name, ['envd', String(ENVD_PORT)], env);
  });
  after(async () => {
    await child?.stop();
    ns?.destroy();
  });

  test('envd answers on the namespace address and forwards a loopback server, not itself', async () => {
    const health = await fetch(`http://${ns.nsIp}:${ENVD_PORT}/health`);
    assert.equal(health.status, 204);
    await child.send({ cmd: 'listen', host: '127.0.0.1', port: 8888 });
    const forwards = await child.forwards();
    assert.deepEqual(forwards, [{ port: 8888, address: ns.nsIp, target: '127.0.0.1' }]);
    assert.equal(await talk(ns.nsIp, 8888), 'hello from 127.0.0.1:8888\nping\n');
  });
});
