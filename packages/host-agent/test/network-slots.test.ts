// Address pool arithmetic and the persisted slot store (real files in a temp dir).

import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parsePool, slotAddresses, slotOfCapsuleIp } from '../src/network/address-pool.js';
import { type SlotRecord, SlotStore } from '../src/network/slot-store.js';

test('pool: /30 slots, host side .1 (gateway), capsule side .2', () => {
  const p = parsePool('10.201.7.9/16');
  assert.equal(p.cidr, '10.201.0.0/16');
  assert.equal(p.slots, 16384);
  assert.deepEqual(slotAddresses(p, 0), { hostIp: '10.201.0.1', capsuleIp: '10.201.0.2' });
  assert.deepEqual(slotAddresses(p, 64), { hostIp: '10.201.1.1', capsuleIp: '10.201.1.2' });
  assert.deepEqual(slotAddresses(p, 16383), { hostIp: '10.201.255.253', capsuleIp: '10.201.255.254' });
  assert.equal(slotOfCapsuleIp(p, '10.201.1.2'), 64);
  assert.equal(slotOfCapsuleIp(p, '::ffff:10.201.1.2'), 64);
  assert.equal(slotOfCapsuleIp(p, '10.201.1.1'), undefined, 'a host side is not a capsule');
  assert.equal(slotOfCapsuleIp(p, '10.202.0.2'), undefined);
  assert.equal(slotOfCapsuleIp(p, '127.0.0.1'), undefined);
  assert.throws(() => slotAddresses(p, 16384), /outside the pool/);
  assert.throws(() => parsePool('10.201.0.0'), /not an IPv4 CIDR/);
  assert.throws(() => parsePool('10.201.0.0/31'), /between \/8 and \/30/);
  assert.throws(() => parsePool('10.300.0.0/16'), /not an IPv4 address/);
});

function maker(id: string) {
  return (slot: number): SlotRecord => ({
    slot,
    id,
    netnsName: `wrenn-${id}`,
    internet: true,
    rateMbit: 200,
    metadata: {},
    pool: '10.201.0.0/16',
    createdAt: new Date().toISOString(),
  });
}

test('slot store: 50 concurrent allocations get distinct slots, persisted one file each', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wrenn-slots-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const store = new SlotStore(dir, 64);
  await store.load();
  const recs = await Promise.all(Array.from({ length: 50 }, (_, i) => store.allocate(maker(`cl-${i}`))));
  assert.equal(new Set(recs.map((r) => r.slot)).size, 50);
  const files = (await readdir(store.dir)).filter((f) => f.endsWith('.json'));
  assert.equal(files.length, 50);
  assert.equal((await readdir(store.dir)).filter((f) => f.startsWith('.tmp-')).length, 0, 'no temp files left');

  // A restarted agent sees the same allocation.
  const again = new SlotStore(dir, 64);
  await again.load();
  assert.deepEqual(again.list(), store.list());
  assert.equal(again.byId('cl-7')?.slot, store.byId('cl-7')?.slot);

  // A second store on the same directory (another process) cannot take a slot the first holds.
  const other = new SlotStore(dir, 64);
  await other.load();
  const mine = await store.allocate(maker('cl-new')); // a slot `other` has not seen in memory
  const theirs = await other.allocate(maker('cl-other')); // link() finds the file and moves on
  assert.equal(mine.slot, 50);
  assert.equal(theirs.slot, 51);
  assert.equal(JSON.parse(await readFile(join(store.dir, '50.json'), 'utf8')).id, 'cl-new');

  // Updates are atomic replacements.
  await store.update({ ...mine, internet: false });
  assert.equal(JSON.parse(await readFile(join(store.dir, `${mine.slot}.json`), 'utf8')).internet, false);
});

test('slot store: a full pool says what to do; corrupt files are reported for removal', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wrenn-slots-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const store = new SlotStore(dir, 2);
  await store.load();
  await store.allocate(maker('a'));
  await store.allocate(maker('b'));
  await assert.rejects(store.allocate(maker('c')), /no free network slot: all 2 slots are in use/);

  await writeFile(join(store.dir, '5.json'), '{not json');
  const fresh = new SlotStore(dir, 8);
  const { corrupt } = await fresh.load();
  assert.deepEqual(corrupt, ['5.json']);
  assert.deepEqual(
    fresh.list().map((r) => r.id),
    ['a', 'b'],
  );
  assert.throws(() => new SlotStore(dir, 2).list(), /before load/);
});
