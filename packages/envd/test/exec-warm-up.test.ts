// envd's exec warm-up (src/exec-warm-up.ts): the call goes through envd's own Start path with the
// access token, its process runs and is never listed; a client that sends the warm-up header with
// any other value is listed as usual; the heartbeat sends it once, only when no Start was served.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isWarmUpCall, sendWarmUpCall, startExecWarmUp, WARM_UP_HEADER } from '../src/exec-warm-up.js';
import { Heartbeat } from '../src/heartbeat.js';
import { startTestEnvd, type TestEnvd } from './helpers.js';

const TOKEN = 'warm-up-test-token';
let envd: TestEnvd;
let dir = '';

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'envd-warm-up-'));
  envd = await startTestEnvd();
  envd.server.state.accessToken = TOKEN;
});
after(async () => {
  await envd.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Waits for `check` (every 20 ms, up to `ms`); fails with `what` and what it last saw. */
async function waitFor(check: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const listed = async () =>
  (await envd.process.list({}, { headers: { 'x-access-token': TOKEN } })).processes.map((p) => p.config?.args ?? []);

test('the warm-up call runs its command through Start (with the token) and is never listed', async () => {
  const ran = join(dir, 'ran');
  const call = sendWarmUpCall({
    port: envd.server.port,
    host: '0.0.0.0',
    state: envd.server.state,
    command: { cmd: '/bin/sh', args: ['-c', `touch ${ran}; sleep 1`] },
  });
  await waitFor(() => existsSync(ran), `the warm-up command to create ${ran}`);
  // It is running now (for ~1 s): not in Process.List.
  const seen = await listed();
  assert.deepEqual(seen, [], `Process.List showed ${JSON.stringify(seen)} while the warm-up command ran`);
  await call;
});

test('a client cannot hide a process with the warm-up header', async () => {
  const headers = { 'x-access-token': TOKEN, [WARM_UP_HEADER]: 'a-guess' };
  assert.equal(isWarmUpCall(new Headers({ [WARM_UP_HEADER]: 'a-guess' })), false);
  const stream = envd.process.start(
    { process: { cmd: '/bin/sh', args: ['-c', 'sleep 30'] }, tag: 'not-hidden' },
    { headers },
  );
  const it = stream[Symbol.asyncIterator]();
  const first = await it.next();
  assert.equal(first.value?.event?.event.case, 'start');
  const pid = first.value?.event?.event.case === 'start' ? first.value.event.event.value.pid : 0;
  try {
    const tags = (await envd.process.list({}, { headers: { 'x-access-token': TOKEN } })).processes.map((p) => p.tag);
    assert.ok(tags.includes('not-hidden'), `Process.List showed tags ${JSON.stringify(tags)}`);
  } finally {
    process.kill(pid, 'SIGKILL');
    await it.return?.();
  }
});

test('the heartbeat sends the warm-up once, and only when no Start was served', async () => {
  const heartbeat = new Heartbeat({ periodMs: 20, maxPeriodMs: 20 });
  const marks = [join(dir, 'beat-0'), join(dir, 'beat-1')];
  for (const [i, served] of [0, 1].entries()) {
    const mark = marks[i] as string;
    let beats = 0;
    const stopCount = heartbeat.on(() => {
      beats++;
    });
    const stop = startExecWarmUp({
      port: envd.server.port,
      host: '127.0.0.1',
      state: envd.server.state,
      heartbeat,
      startsServed: () => served,
      command: { cmd: '/bin/sh', args: ['-c', `echo x >> ${mark}`] },
    });
    try {
      if (served === 0) await waitFor(() => existsSync(mark), `the warm-up to run at the first beat (${mark})`);
      // Several more beats: it never runs (again).
      const until = beats + 10;
      await waitFor(() => beats >= until, '10 more heartbeat beats');
      assert.equal(existsSync(mark), served === 0, `warm-up ran: ${existsSync(mark)} with ${served} Starts served`);
    } finally {
      stop();
      stopCount();
    }
  }
  assert.equal(readFileSync(marks[0] as string, 'utf8'), 'x\n', 'the warm-up ran exactly once');
});
