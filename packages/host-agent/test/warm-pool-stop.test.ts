// The warm pool at the agent's shutdown, below the live test (control-plane cluster/agent-cli):
// stop() aborts the boots under way rather than waiting for them to finish, each gives back what it
// made, the ready capsules are released, and sizes sent while it stops (a control plane's host
// monitor re-sending them) are refused and boot nothing. The boots here are the pool's own
// interface driven by hand: what one makes is a token the test counts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UnavailableError } from '@wrenn/protocol';
import { type PooledCapsule, untilAborted, WarmPool } from '../src/manager/warm-pool.js';

function pooled(runtimeId: string, template: string): PooledCapsule {
  return {
    runtimeId,
    template,
    vcpus: 1,
    memoryMb: 256,
    handle: { pid: 0, address: '' } as unknown as PooledCapsule['handle'],
    network: {} as PooledCapsule['network'],
    address: '',
  };
}

test('stop() aborts boots under way (each gives back what it made), releases ready capsules, and refuses new sizes', async () => {
  const made = new Set<string>();
  const released: string[] = [];
  let n = 0;
  const pool = new WarmPool({
    sizes: { fast: 1, slow: 2 },
    vcpus: 1,
    memoryMb: 256,
    async boot(template, signal) {
      const id = `${template}-${n++}`;
      made.add(id);
      try {
        // fast is ready at once; slow waits for a service that never comes, until aborted.
        if (template === 'slow') await untilAborted(new Promise<never>(() => {}), signal, `boot ${id}`);
        return pooled(id, template);
      } catch (err) {
        made.delete(id); // what an aborted boot made goes before it rejects
        throw err;
      }
    },
    async release(e) {
      made.delete(e.runtimeId);
      released.push(e.runtimeId);
    },
  });
  pool.fillAll();
  for (let i = 0; pool.readyCount('fast') < 1; i++) {
    assert.ok(i < 100, 'the fast boot finished');
    await new Promise((r) => setImmediate(r));
  }
  assert.equal(pool.bootsInFlight(), 2, 'two slow boots under way');

  let settled = false;
  const stopping = pool.stop().then(() => (settled = true));
  assert.equal(pool.stopping, true);
  await assert.rejects(pool.resize({ fast: 3 }), UnavailableError, 'sizes sent while it stops are refused');
  await stopping;
  assert.ok(settled);
  assert.equal(pool.bootsInFlight(), 0);
  assert.deepEqual([...made], [], 'nothing any boot made is left');
  assert.deepEqual(released, ['fast-0'], 'the ready capsule was released');
  assert.equal(pool.heldCount(), 0);
});

test('untilAborted: the work when it finishes first, a rejection naming it once aborted, and the late outcome dropped', async () => {
  const ac = new AbortController();
  assert.equal(await untilAborted(Promise.resolve(7), ac.signal, 'x'), 7);
  let fail!: (e: Error) => void;
  const late = untilAborted(new Promise<number>((_r, j) => (fail = j)), ac.signal, 'boot of slow');
  ac.abort();
  await assert.rejects(late, /boot of slow: stopped, the host agent is shutting down/);
  fail(new Error('too late')); // no unhandled rejection
  await assert.rejects(untilAborted(Promise.resolve(1), ac.signal, 'already'), UnavailableError);
});
