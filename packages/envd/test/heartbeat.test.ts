// envd's heartbeat: one timer for every periodic check, fast while active, slowing down (doubling
// up to its maximum) once quiet, and fast again at once on activity. Behaviour, not timings.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Heartbeat } from '../src/heartbeat.js';

// The heartbeat's timer is unref'd (it never keeps envd alive): this keeps the test process alive.
const keepAlive = setInterval(() => undefined, 1000);
after(() => clearInterval(keepAlive));

/** Resolves at the next beat of `hb` with the period it then has. */
function nextBeat(hb: Heartbeat): Promise<number> {
  return new Promise((resolve) => {
    const stop = hb.on(() => {
      stop();
      // read after the beat has decided its next period
      setImmediate(() => resolve(hb.currentPeriodMs()));
    });
  });
}

test('quiet: the period doubles up to its maximum; active() brings it back to the fast one', async (t) => {
  const hb = new Heartbeat({ periodMs: 5, maxPeriodMs: 40, quietAfterMs: 0 });
  const beats: number[] = [];
  const stop = hb.on((elapsed) => beats.push(elapsed));
  t.after(stop);
  const periods: number[] = [];
  while (periods.length < 5) periods.push(await nextBeat(hb));
  assert.deepEqual(periods, [10, 20, 40, 40, 40]);
  hb.active();
  assert.equal(hb.currentPeriodMs(), 5);
  assert.ok(beats.every((e) => e >= 0));
});

test('active() moves a far beat forward to within the fast period', (t) => {
  const hb = new Heartbeat({ periodMs: 10, maxPeriodMs: 60_000, quietAfterMs: 0 });
  // Force the slow state: a beat scheduled a minute away.
  const stop = hb.on(() => undefined);
  t.after(stop);
  const internals = hb as unknown as { schedule(ms: number): void; dueAt: number };
  internals.schedule(60_000);
  assert.ok(internals.dueAt - Date.now() > 50_000);
  hb.active();
  assert.ok(internals.dueAt - Date.now() <= 10, `next beat in ${internals.dueAt - Date.now()} ms`);
});

test('a busy predicate keeps the fast period; a throwing check does not stop the others', async (t) => {
  const hb = new Heartbeat({ periodMs: 5, maxPeriodMs: 40, quietAfterMs: 0 });
  let busy = true;
  t.after(hb.busyWhile(() => busy));
  let calls = 0;
  t.after(
    hb.on(() => {
      throw new Error('boom (expected in this test)');
    }),
  );
  t.after(hb.on(() => calls++));
  for (let i = 0; i < 3; i++) assert.equal(await nextBeat(hb), 5);
  busy = false;
  assert.equal(await nextBeat(hb), 10);
  assert.ok(calls >= 4);
});

test('no check, no timer; bad options are refused', () => {
  assert.throws(() => new Heartbeat({ periodMs: 0 }), /positive/);
  assert.throws(() => new Heartbeat({ periodMs: 100, maxPeriodMs: 50 }), /at least periodMs/);
  const hb = new Heartbeat();
  const stop = hb.on(() => undefined);
  stop();
  assert.equal((hb as unknown as { timer: unknown }).timer, undefined);
});

test('sleepWhenQuiet: once quiet with no awake predicate true, no beat is due until active()', async (t) => {
  const hb = new Heartbeat({ periodMs: 5, maxPeriodMs: 5, quietAfterMs: 20, sleepWhenQuiet: true });
  let beats = 0;
  t.after(hb.on(() => beats++));
  while (!hb.sleeping() || hb.sleepCount() === 0) await new Promise((r) => setTimeout(r, 5));
  assert.ok(hb.quiet());
  const asleepAt = beats;
  await new Promise((r) => setTimeout(r, 60)); // a dozen periods
  assert.equal(beats, asleepAt, 'no beat while asleep');
  hb.active();
  assert.equal(hb.sleeping(), false, 'active() schedules a beat');
  assert.equal(hb.quiet(), false);
  await new Promise((r) => setTimeout(r, 30));
  assert.ok(beats > asleepAt, 'beats again after active()');
});

test('sleepWhenQuiet: an awake predicate keeps it beating once quiet; a throwing one counts as awake', async (t) => {
  const hb = new Heartbeat({ periodMs: 5, maxPeriodMs: 5, quietAfterMs: 0, sleepWhenQuiet: true });
  let others: boolean | 'throw' = true;
  t.after(
    hb.awakeWhile(() => {
      if (others === 'throw') throw new Error('cannot tell (expected in this test)');
      return others;
    }),
  );
  let beats = 0;
  t.after(hb.on(() => beats++));
  await new Promise((r) => setTimeout(r, 40));
  assert.ok(beats >= 3, `beat ${beats} times while another process exists`);
  assert.equal(hb.sleepCount(), 0);
  others = 'throw';
  const before = beats;
  await new Promise((r) => setTimeout(r, 30));
  assert.ok(beats > before && hb.sleepCount() === 0, 'a predicate that throws keeps it awake');
  others = false;
  while (hb.sleepCount() === 0) await new Promise((r) => setTimeout(r, 5));
  assert.ok(hb.sleeping());
});

test('without sleepWhenQuiet a quiet heartbeat never sleeps', async (t) => {
  const hb = new Heartbeat({ periodMs: 5, maxPeriodMs: 10, quietAfterMs: 0 });
  let beats = 0;
  t.after(hb.on(() => beats++));
  await new Promise((r) => setTimeout(r, 60));
  assert.ok(beats >= 3);
  assert.equal(hb.sleepCount(), 0);
  assert.equal(hb.sleeping(), false);
});
