// envd in a real capsule (host agent, namespace runtime, real network), issue 15: its port
// forwarder still finds a server bound to 127.0.0.1 (forwarded) and one bound to 0.0.0.0 (reachable
// as is) within 1 s, seen from the host at <capsule ip>:<port>, whether the server is started by a
// command that returns (a daemon), by a command still running (foreground), or long after its
// command returned and envd went quiet (a background job, a daemon); and an idle capsule's envd
// wakes 0 times and uses under 0.1 % of one core over 10 s (CPU time and wake-ups of all its
// threads from /proc/<pid>/task/*/schedstat).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { leftovers, newDataDir, sleep, startTestAgent, type TestAgent, teardown, text } from './agent-helpers.js';

const isRoot = process.getuid?.() === 0;
const opts = { skip: isRoot ? false : 'needs root (namespaces, veth, iptables, cgroups)' };
const FIND_WITHIN_MS = 1_000;
const IDLE_WINDOW_MS = 10_000;
const IDLE_BUDGET_NS = IDLE_WINDOW_MS * 1e6 * 0.001; // 0.1 % of one core
const CLK_TCK = 100;
const SETTLE_AFTER_REQUEST_MS = 32_000;

let dataDir = '';
let t: TestAgent | undefined;
const created: string[] = [];

before(async () => {
  if (!isRoot) return;
  dataDir = newDataDir();
  t = await startTestAgent(dataDir);
});

after(async () => {
  if (!isRoot) return;
  await teardown(t, dataDir);
  const left = leftovers(dataDir, created);
  assert.deepEqual(left, [], `resources left behind: ${left.join(', ')}`);
});

const agent = () => {
  if (!t) throw new Error('agent not started');
  return t;
};

async function newCapsule(): Promise<{ id: string; ip: string }> {
  const { capsule } = await agent().client.createCapsule({ template: 'minimal', timeoutSec: 600 });
  assert.ok(capsule);
  created.push(capsule.id);
  const ip = agent().agent.manager.get(capsule.id).address;
  assert.match(ip, /^\d+\.\d+\.\d+\.\d+$/, `capsule ${capsule.id} has an IPv4 address`);
  return { id: capsule.id, ip };
}

async function sh(id: string, script: string): Promise<string> {
  const r = await agent().client.exec({ capsuleId: id, cmd: '/bin/sh', args: ['-c', script], user: 'root' });
  assert.equal(r.exitCode, 0, `${script}: ${text(r.stderr)}`);
  return text(r.stdout);
}

/** GET http://host:port/ from the host; the body, or the error code. */
function get(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const req = http.get({ host, port, path: '/index.html', timeout: 500, agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => {
        body += d.toString();
      });
      res.on('end', () => resolve(body));
      res.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

/** Polls until GET answers `want`; returns the milliseconds since `since`, or throws after `limitMs`. */
async function reachableAfter(
  host: string,
  port: number,
  want: string,
  since: number,
  limitMs: number,
): Promise<number> {
  let last = '';
  while (Date.now() - since < limitMs) {
    last = await get(host, port);
    if (last === want) return Date.now() - since;
    await sleep(20);
  }
  throw new Error(`${host}:${port} not reachable ${limitMs} ms after the server started (last answer: ${last})`);
}

/** The capsule's envd: the child of its init whose command line names envd. */
function envdPid(id: string): number {
  const init = (agent().agent.manager.get(id).handle?.state as { pid?: number } | undefined)?.pid ?? 0;
  assert.ok(init > 0, `capsule ${id} has an init pid`);
  const children = readFileSync(`/proc/${init}/task/${init}/children`, 'utf8').trim().split(/\s+/).map(Number);
  const envd = children.find((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('envd'));
  assert.ok(envd, `envd among the init's children (${children.join(',')})`);
  return envd;
}

/**
 * CPU time of every thread of `pid`: ns on CPU and times it was scheduled (woken) from schedstat,
 * and utime+stime clock ticks (stat).
 */
function cpuOf(pid: number): { ns: number; wakes: number; ticks: number } {
  let ns = 0;
  let wakes = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const f = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ');
      ns += Number(f[0]);
      wakes += Number(f[2]);
    } catch {
      // a thread that ended meanwhile: its time moved to the process totals below
    }
  }
  // Fields after the command (which may hold spaces): utime is field 14, stime 15.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { ns, wakes, ticks: Number(f[11]) + Number(f[12]) };
}

/** Host milliseconds since boot now, and when process `pid` started (10 ms resolution). */
const uptimeMs = () => Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 1000;
function startedAtMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]) / CLK_TCK) * 1000;
}

/** Host pids of the capsule's processes whose command line contains `needle`. */
function capsulePids(id: string, needle: string): number[] {
  const init = (agent().agent.manager.get(id).handle?.state as { pid?: number } | undefined)?.pid ?? 0;
  const out: number[] = [];
  const walk = (pid: number) => {
    let children: number[] = [];
    try {
      children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
        .trim()
        .split(/\s+/)
        .filter(Boolean)
        .map(Number);
    } catch {
      return; // ended meanwhile
    }
    for (const c of children) {
      try {
        if (readFileSync(`/proc/${c}/cmdline`, 'utf8').replaceAll('\0', ' ').includes(needle)) out.push(c);
      } catch {
        continue;
      }
      walk(c);
    }
  };
  walk(init);
  return out;
}

/**
 * Polls <ip>:<port> from the host until it serves the page; returns how long after the server
 * process (found by `needle` in its command line) started that was, from the host's clock.
 */
async function foundAfterStart(id: string, ip: string, port: number, needle: string, limitMs: number): Promise<number> {
  const since = Date.now();
  let last = '';
  while (Date.now() - since < limitMs) {
    last = await get(ip, port);
    if (last === 'served-by-httpd\n') {
      const reachedAt = uptimeMs();
      const pids = capsulePids(id, needle);
      assert.ok(pids.length > 0, `a process with '${needle}' in the capsule`);
      return reachedAt - Math.max(...pids.map(startedAtMs));
    }
    await sleep(20);
  }
  throw new Error(`${ip}:${port} not reachable within ${limitMs} ms (last answer: ${last})`);
}

test(
  'the forwarder finds a server on 127.0.0.1 and one on 0.0.0.0 within 1 s, reachable from the host',
  opts,
  async () => {
    const { id, ip } = await newCapsule();
    await sh(id, 'mkdir -p /tmp/www && echo served-by-httpd > /tmp/www/index.html');
    for (const [bind, port] of [
      ['127.0.0.1', 3000],
      ['0.0.0.0', 3001],
    ] as const) {
      assert.notEqual(await get(ip, port), 'served-by-httpd\n', `${bind}:${port} answered before it was started`);
      // busybox httpd daemonizes once it listens: the exec returns with the server listening.
      await sh(id, `httpd -p ${bind}:${port} -h /tmp/www`);
      const since = Date.now();
      const took = await reachableAfter(ip, port, 'served-by-httpd\n', since, FIND_WITHIN_MS * 5);
      process.stdout.write(`# server on ${bind}:${port} reachable at ${ip}:${port} after ${took} ms\n`);
      assert.ok(
        took <= FIND_WITHIN_MS,
        `${bind}:${port} reachable only after ${took} ms (want within ${FIND_WITHIN_MS} ms)`,
      );
    }
    // The 0.0.0.0 server needs no forward: only httpd itself listens on port 3001.
    const listeners = (await sh(id, 'netstat -ltn')).split('\n').filter((l) => /:3001\s/.test(l));
    assert.equal(listeners.length, 1, `one listener on 3001:\n${listeners.join('\n')}`);
    assert.ok(
      (await sh(id, 'netstat -ltn')).split('\n').some((l) => l.includes(`${ip}:3000`)),
      'the forward of 3000 listens on the capsule address',
    );
    // The forward goes with its server, again within a scan.
    await sh(id, 'kill $(pidof httpd)');
    const since = Date.now();
    for (;;) {
      const answer = await get(ip, 3000);
      if (answer === 'ECONNREFUSED') break;
      if (Date.now() - since > FIND_WITHIN_MS * 5) {
        const sandboxDir = (agent().agent.manager.get(id).handle?.state as { sandboxDir?: string } | undefined)
          ?.sandboxDir;
        const log = sandboxDir
          ? readFileSync(`${sandboxDir}/envd.log`, 'utf8').split('\n').slice(-40).join('\n')
          : '(no sandbox dir)';
        assert.fail(
          `forward of 3000 still there after its server was killed: ${answer}\n${await sh(id, 'netstat -ltn; ps')}\nenvd.log:\n${log}`,
        );
      }
      await sleep(50);
    }
    await agent().client.destroyCapsule({ id });
  },
);

test('a server a foreground command runs (the exec still in flight) is found within 1 s', opts, async () => {
  const { id, ip } = await newCapsule();
  await sh(id, 'mkdir -p /tmp/www && echo served-by-httpd > /tmp/www/index.html');
  const since = Date.now();
  const running = agent().client.exec({
    capsuleId: id,
    cmd: 'httpd',
    args: ['-f', '-p', '127.0.0.1:3004', '-h', '/tmp/www'],
    user: 'root',
  });
  const took = await reachableAfter(ip, 3004, 'served-by-httpd\n', since, FIND_WITHIN_MS * 5);
  process.stdout.write(
    `# foreground httpd on 127.0.0.1:3004 reachable at ${ip}:3004 ${took} ms after the exec was sent\n`,
  );
  assert.ok(took <= FIND_WITHIN_MS, `reachable only after ${took} ms (want within ${FIND_WITHIN_MS} ms)`);
  await sh(id, 'kill $(pidof httpd)');
  const r = await running;
  assert.notEqual(r.exitCode, 0, 'the foreground httpd ended by the kill');
  await agent().client.destroyCapsule({ id });
});

test(
  'a server started after envd went quiet, by a background job or a daemon that outlived its command, is found within 1 s',
  opts,
  async () => {
    const { id, ip } = await newCapsule();
    await sh(id, 'mkdir -p /tmp/www && echo served-by-httpd > /tmp/www/index.html');
    // Each command returns at once; its job starts the server 13 s later, when envd has had no
    // request for longer than its quiet time (10 s): only the process left behind keeps it scanning.
    const cases = [
      // a background job: httpd in the foreground of a job the command left running
      { port: 3005, bind: '127.0.0.1', script: 'httpd -f -p 127.0.0.1:3005 -h /tmp/www', needle: '127.0.0.1:3005' },
      { port: 3006, bind: '0.0.0.0', script: 'httpd -f -p 0.0.0.0:3006 -h /tmp/www', needle: '0.0.0.0:3006' },
      // a daemon: httpd forks itself into the background once it listens, the job ends
      { port: 3007, bind: '127.0.0.1', script: 'httpd -p 127.0.0.1:3007 -h /tmp/www', needle: '127.0.0.1:3007' },
    ];
    // `; true`: the shell must fork httpd, not exec it in place of the job (its start time is read).
    await sh(id, cases.map((c) => `(sleep 13; ${c.script}; true) </dev/null >/dev/null 2>&1 &`).join('\n'));
    for (const c of cases) {
      const took = await foundAfterStart(id, ip, c.port, c.needle, 30_000);
      process.stdout.write(
        `# httpd on ${c.bind}:${c.port} (${c.script}) reachable from the host ${took.toFixed(0)} ms after it started\n`,
      );
      // The start time has 10 ms resolution: allow one tick.
      assert.ok(took <= FIND_WITHIN_MS + 10, `${c.bind}:${c.port} reachable only ${took} ms after its server started`);
    }
    await agent().client.destroyCapsule({ id });
  },
);

test("an idle capsule's envd wakes 0 times and uses under 0.1 % of one core over 10 s", opts, async (t) => {
  const { id } = await newCapsule();
  await sh(id, 'echo some work first');
  const pid = envdPid(id);
  const lastRequest = Date.now();
  // Idle means after the aftermath of start-up and work, each one-off, none periodic: the idle
  // memory release (within a beat or two), envd going quiet 10 s after the last request, V8's memory
  // reducer (a few GCs some seconds apart), and the host agent closing its idle connection to envd
  // (~30 s after the last request, seen with strace: envd reads the EOF and closes its side). So:
  // from SETTLE_AFTER_REQUEST_MS after the last request, wait (at most 90 s) for 10 s without a
  // wake-up, then judge a further 10-s window. Once quiet with nothing else running in the
  // capsule, envd has no timer due at all.
  await sleep(Math.max(0, SETTLE_AFTER_REQUEST_MS - (Date.now() - lastRequest)));
  const settleUntil = Date.now() + 90_000;
  for (let prev = cpuOf(pid).wakes; ; ) {
    await sleep(10_000);
    const now = cpuOf(pid).wakes;
    if (now === prev) break;
    assert.ok(Date.now() < settleUntil, `envd still woke ${now - prev} times in 10 s after 90 s idle`);
    prev = now;
  }
  // A yardstick in the same window, used only if envd woke: a bare node waking once a second.
  // Where even that costs more than the budget (the 2026-12-07 machine, nested virtualization:
  // ~22 ms per 10 s), a waking envd cannot be judged against 0.1 % here, and the test says so.
  const ref = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  await sleep(3_000);
  const refBefore = cpuOf(ref.pid ?? 0);
  const before = cpuOf(pid);
  await sleep(IDLE_WINDOW_MS);
  const after = cpuOf(pid);
  const refNs = cpuOf(ref.pid ?? 0).ns - refBefore.ns;
  ref.kill('SIGKILL');
  const ns = after.ns - before.ns;
  const wakes = after.wakes - before.wakes;
  const ticks = after.ticks - before.ticks;
  process.stdout.write(
    `# idle envd ${pid}: ${wakes} wake-ups, ${(ns / 1e6).toFixed(2)} ms CPU in ${IDLE_WINDOW_MS / 1000} s (${((ns / (IDLE_WINDOW_MS * 1e6)) * 100).toFixed(3)} % of a core), ${ticks} clock ticks; a bare node waking each second: ${(refNs / 1e6).toFixed(2)} ms\n`,
  );
  if (wakes > 0 && refNs >= IDLE_BUDGET_NS) {
    t.skip(
      `envd woke ${wakes} times, and this machine's wake-ups cost too much to judge 0.1 % (bare node ${(refNs / 1e6).toFixed(1)} ms / 10 s; envd ${(ns / 1e6).toFixed(1)} ms)`,
    );
    await agent().client.destroyCapsule({ id });
    return;
  }
  assert.ok(
    ns < IDLE_BUDGET_NS,
    `envd used ${(ns / 1e6).toFixed(2)} ms of CPU in 10 s idle (budget ${IDLE_BUDGET_NS / 1e6} ms)`,
  );
  // utime+stime are rounded to 10 ms ticks: under 10 ms shows as at most one tick.
  assert.ok(ticks <= (IDLE_BUDGET_NS / 1e9) * CLK_TCK, `envd's utime+stime grew by ${ticks} ticks in 10 s idle`);
  await agent().client.destroyCapsule({ id });
});
