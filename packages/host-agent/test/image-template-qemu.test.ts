// A container image on the QEMU runtime: the image template's layers (the image's cached layers
// under Wrenn's own) become the VM's ext4 root disk, built once per image and kept with the
// template; envd and a musl program run in it. Software emulation here (no usable KVM).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { ImageTemplateResult } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import { haveMuslGcc, haveRegistry, pushMuslImage, startRegistry, type TestRegistry } from '../src/testing/oci.js';
import { hasQemu, leftovers, newDataDir, startTestAgent, type TestAgent, teardown, text } from './agent-helpers.js';

const skip = !hasQemu
  ? 'qemu-system-x86_64 is not installed'
  : !haveRegistry
    ? 'Debian docker-registry is not installed (scripts/setup.mjs installs it)'
    : false;
const dataDir = newDataDir();
let t: TestAgent | undefined;
let reg: TestRegistry | undefined;
const ids: string[] = [];

after(async () => {
  await teardown(t, dataDir);
  await reg?.stop();
  const left = leftovers(dataDir, ids);
  assert.deepEqual(left, [], `resources left behind: ${left.join(', ')}`);
});

test('a VM capsule of a musl image on qemu: ext4 disk from the image layers, envd and commands', {
  skip,
  timeout: 600_000,
}, async () => {
  reg = await startRegistry();
  await pushMuslImage(reg, 'wrenn-test/musl', 'v1');
  t = await startTestAgent(dataDir);
  const a = t.client;
  let result: ImageTemplateResult | undefined;
  for await (const ev of a.ensureImageTemplate({ image: `${reg.host}/wrenn-test/musl:v1` }))
    if (ev.event.case === 'result') result = ev.event.value;
  const name = result?.template?.name ?? '';
  assert.ok(result?.template?.runtimes.includes('qemu'), `runtimes: ${result?.template?.runtimes.join(', ')}`);
  const { capsule } = await a.createCapsule({ template: name, runtime: 'qemu', timeoutSec: 600 });
  assert.ok(capsule);
  ids.push(capsule.id);
  assert.equal(capsule.runtime, 'qemu');
  const r = await a.exec({
    capsuleId: capsule.id,
    cmd: '/bin/sh',
    args: [
      '-c',
      `cat /etc/os-release /app/hello.txt; stat -c %U /app/hello.txt; ${haveMuslGcc ? '/usr/bin/hello-musl' : 'echo hello from musl'}`,
    ],
  });
  assert.equal(r.exitCode, 0, text(r.stderr));
  assert.equal(text(r.stdout), 'ID=wrenn-test-musl\nhi from the image\napp\nhello from musl\n');
  assert.ok(existsSync(join(dataDir, 'images', name, 'rootfs.ext4')), 'the VM disk is kept with the image template');
  await a.destroyCapsule({ id: capsule.id });
  process.stdout.write('# qemu ran in software emulation (TCG): this machine has no usable KVM\n');
});
