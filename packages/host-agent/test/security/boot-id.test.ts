// A fresh /proc/sys/kernel/random/boot_id per boot of a namespace capsule (cold boot, resume from
// disk), kept across a memory pause, never the host's; and the hostile side: the capsule's root
// cannot write it, unmount it or reach the host's, and a neighbour keeps its own. Everything made
// here is removed in after().
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { execInCapsule, type NamespaceRuntime } from '../../src/runtimes/namespace/index.js';
import type { RuntimeHandle } from '../../src/runtimes/runtime.js';
import { makeEnv, rand, spec, standInEnvd } from '../namespace-fixtures.js';

const env = makeEnv();
const handles = new Map<string, RuntimeHandle>();
let rt: NamespaceRuntime;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const hostBootId = () => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();

const sh = (h: RuntimeHandle, script: string, uid?: number) =>
  execInCapsule(h, ['/bin/sh', '-c', script], { timeoutMs: 30_000, ...(uid === undefined ? {} : { uid }) });
const bootId = async (h: RuntimeHandle) => (await sh(h, 'cat /proc/sys/kernel/random/boot_id')).stdout.trim();

before(async () => {
  rt = env.runtime({ mainCommand: standInEnvd });
  for (const name of ['a', 'b']) {
    const h = await rt.create(spec(`cl-boot${name}${rand()}`));
    handles.set(name, h);
  }
});

after(async () => {
  for (const h of handles.values())
    await env
      .runtime()
      .destroy(h)
      .catch((err) => console.error('destroy', h.id, err));
  const left = env.leftovers();
  await env.cleanup();
  assert.deepEqual(left, [], `left behind: ${left.join(', ')}`);
});

test('each capsule boots with a boot_id of its own, not the host', async () => {
  const a = handles.get('a') as RuntimeHandle;
  const b = handles.get('b') as RuntimeHandle;
  const [ia, ib] = [await bootId(a), await bootId(b)];
  assert.match(ia, UUID);
  assert.match(ib, UUID);
  assert.notEqual(ia, hostBootId());
  assert.notEqual(ia, ib);
  // The same value for every reader in the capsule, as root and as the default user.
  assert.equal((await sh(a, 'cat /proc/sys/kernel/random/boot_id', 1000)).stdout.trim(), ia);
});

test('a memory pause keeps the boot_id; a resume from disk is a new boot with a new one', async () => {
  let a = handles.get('a') as RuntimeHandle;
  const before = await bootId(a);
  assert.ok(rt.pauseModes.includes('freeze') && rt.pauseModes.includes('hibernate'));
  await rt.pause(a, 'freeze');
  a = await rt.resume(a);
  handles.set('a', a);
  assert.equal(await bootId(a), before, 'a frozen capsule did not reboot: its boot_id stays');
  await rt.pause(a, 'hibernate');
  a = await rt.resume(a);
  handles.set('a', a);
  const after = await bootId(a);
  assert.match(after, UUID);
  assert.notEqual(after, before, 'a resume from disk is a new boot: it needs a new boot_id');
  assert.notEqual(after, hostBootId());
});

test('hostile: capsule root cannot change, unmount or see past its boot_id; the neighbour and host keep theirs', async () => {
  const a = handles.get('a') as RuntimeHandle;
  const b = handles.get('b') as RuntimeHandle;
  const host = hostBootId();
  const [ia, ib] = [await bootId(a), await bootId(b)];
  const attack = await sh(
    a,
    [
      'echo 00000000-0000-0000-0000-000000000000 > /proc/sys/kernel/random/boot_id && echo WROTE',
      'umount /proc/sys/kernel/random/boot_id && echo UNMOUNTED',
      'umount -l /proc/sys/kernel/random/boot_id && echo UNMOUNTED',
      'mount -o remount,rw /proc/sys/kernel/random/boot_id && echo REMOUNTED',
      'mount -t proc proc /mnt && cat /mnt/sys/kernel/random/boot_id && echo NEWPROC',
      'true',
    ].join('; '),
  );
  const said = `${attack.stdout}\n${attack.stderr}`;
  for (const word of ['WROTE', 'UNMOUNTED', 'REMOUNTED', 'NEWPROC'])
    assert.ok(!attack.stdout.includes(word), `capsule root succeeded: ${word}\n${said}`);
  assert.equal(await bootId(a), ia, 'the capsule changed its own boot_id');
  assert.equal(await bootId(b), ib, "the neighbour's boot_id changed");
  assert.equal(hostBootId(), host, "the host's boot_id changed");
  assert.ok(!attack.stdout.includes(host), `capsule root read the host's boot_id\n${said}`);
  // The neighbour keeps working.
  assert.equal((await sh(b, 'echo alive')).stdout.trim(), 'alive');
});
