// Per-capsule host id ranges (runtimes/namespace/id-ranges.ts): the configured block, its checks
// against the storage range and /etc/subuid, and the claim files two runtimes share.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { HOST_ID_BASE, ID_RANGE } from '../src/rootfs/index.js';
import {
  DEFAULT_CAPSULE_ID_BASE,
  DEFAULT_CAPSULE_ID_RANGES,
  IdRangeStore,
  idRangeConfig,
  subordinateIdConflicts,
} from '../src/runtimes/namespace/id-ranges.js';

const dir = mkdtempSync('/tmp/wrenn-idranges-');
after(() => rmSync(dir, { recursive: true, force: true }));

test('the default block holds thousands of ranges, below 2^31, clear of root and the storage range', () => {
  const cfg = idRangeConfig({}, {});
  assert.deepEqual(cfg, { base: DEFAULT_CAPSULE_ID_BASE, count: DEFAULT_CAPSULE_ID_RANGES });
  assert.ok(cfg.count >= 4000, `${cfg.count} ranges`);
  assert.ok(cfg.base + cfg.count * ID_RANGE <= 2 ** 31);
  assert.ok(cfg.base >= HOST_ID_BASE + ID_RANGE);
});

test('WRENN_CAPSULE_ID_BASE / _RANGES are read and checked with clear errors', () => {
  assert.deepEqual(idRangeConfig({}, { WRENN_CAPSULE_ID_BASE: '1048576', WRENN_CAPSULE_ID_RANGES: '16' }), {
    base: 1048576,
    count: 16,
  });
  assert.throws(
    () => idRangeConfig({}, { WRENN_CAPSULE_ID_BASE: '1e6' }),
    /WRENN_CAPSULE_ID_BASE=1e6 must be a whole number/,
  );
  assert.throws(() => idRangeConfig({}, { WRENN_CAPSULE_ID_BASE: '0' }), /base must be a whole number >= 65536/);
  assert.throws(() => idRangeConfig({ base: 65536, count: 2 }), /overlaps 100000\.\.165535/);
  assert.throws(() => idRangeConfig({ base: 2 ** 31 - ID_RANGE, count: 2 }), /must end below 2\^31/);
  assert.throws(() => idRangeConfig({ base: 2 ** 20, count: 0 }), /at least one range/);
});

test('an /etc/subuid or /etc/subgid entry inside the block is reported', () => {
  const subuid = join(dir, 'subuid');
  const subgid = join(dir, 'subgid');
  writeFileSync(subuid, 'alice:100000:65536\n# comment\nbob:1879113728:65536\n');
  writeFileSync(subgid, 'alice:100000:65536\n');
  const cfg = { base: DEFAULT_CAPSULE_ID_BASE, count: 4 };
  const found = subordinateIdConflicts(cfg, [subuid, subgid, join(dir, 'missing')]);
  assert.equal(found.length, 1);
  assert.match(found[0]!, /subuid: bob owns 1879113728\.\.1879179263/);
  assert.deepEqual(subordinateIdConflicts({ base: 2 ** 24, count: 4 }, [subuid, subgid]), []);
});

test('claims: distinct ranges, shared safely by two stores on one data dir, released, reclaimed when stale', async () => {
  const cfg = { base: 2 ** 24, count: 3 };
  const one = new IdRangeStore(join(dir, 'data'), cfg);
  const two = new IdRangeStore(join(dir, 'data'), cfg);
  await two.list(); // loaded before `one` claims anything: its view is stale from here on
  const a = await one.allocate('cl-a');
  const b = await two.allocate('cl-b');
  assert.notEqual(a.slot, b.slot, 'two stores handed out the same range');
  assert.equal(a.base, cfg.base + a.slot * ID_RANGE);
  const c = await one.allocate('cl-c');
  await assert.rejects(one.allocate('cl-d'), /no free capsule id range: all 3 are in use/);
  // The stale store releases what the other claimed (it reads the claim, not its cache).
  await two.release('cl-a');
  assert.deepEqual([...(await new IdRangeStore(join(dir, 'data'), cfg).list()).values()].sort(), ['cl-b', 'cl-c']);
  // A restarted agent keeps known capsules' ranges and drops the rest.
  const restarted = new IdRangeStore(join(dir, 'data'), cfg);
  await restarted.releaseUnknown(new Set(['cl-c']));
  assert.deepEqual([...(await restarted.list()).entries()], [[c.slot, 'cl-c']]);
  const d = await restarted.allocate('cl-d');
  assert.notEqual(d.slot, c.slot);
});
