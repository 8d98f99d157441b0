// Hostile container image, run as a capsule: its layers make /etc/hosts, /etc/resolv.conf, /dev
// and /opt symlinks to host paths (where the runtime mounts), carry a setuid-root program and a
// block device node. The template's own layer replaces those symlinks (so no mount lands on a
// host path and nothing is created outside the capsule), the device node never reaches the
// capsule and cannot be made inside it, the setuid program makes capsule root only (a host uid of
// the capsule's own range), and a neighbour capsule keeps working.
import assert from 'node:assert/strict';
import { existsSync, lstatSync } from 'node:fs';
import { test } from 'node:test';
import { haveMuslGcc, muslProgram, pushMuslImage } from '../../src/testing/oci.js';
import { imageAgent, registrySkip } from '../image-agent.js';

const skip = registrySkip;
const ESCAPE = `/tmp/wrenn-image-escape-${process.pid}`;
const fx = imageAgent(async (reg) => {
  await pushMuslImage(reg, 'hostile/musl', 'v1', [
    { name: 'etc/hosts', type: 'symlink', linkname: '/etc/shadow' },
    { name: 'etc/resolv.conf', type: 'symlink', linkname: `../../../../..${ESCAPE}` },
    { name: 'dev', type: 'symlink', linkname: '/' },
    { name: 'opt', type: 'symlink', linkname: '/tmp' },
    // Prints its effective uid and the user namespace's map (busybox would drop the setuid itself).
    ...(haveMuslGcc
      ? [
          {
            name: 'usr/bin/suid-probe',
            mode: 0o4755,
            content: muslProgram(
              '#include <stdio.h>\n#include <unistd.h>\nint main(void){char b[256];FILE*f=fopen("/proc/self/uid_map","r");' +
                'printf("%u\\n",(unsigned)geteuid());if(f&&fgets(b,sizeof b,f))fputs(b,stdout);return 0;}\n',
            ),
          },
        ]
      : []),
    { name: 'evil-sda', type: 'block-device', devmajor: 8, devminor: 0, mode: 0o666 },
  ]);
});
const { capsuleOf, sh } = fx;

test('symlinked mount points, setuid files and device nodes of an image are contained; the neighbour keeps working', {
  skip,
  timeout: 120_000,
}, async () => {
  const shadowBefore = lstatSync('/etc/shadow');
  const { lines, result } = await fx.ensure(`${fx.reg.host}/hostile/musl:v1`);
  assert.ok(result.template, 'no template');
  assert.ok(
    lines.some((l) => /replaced .*\/dev.*\/opt.*\/etc\/hosts/.test(l)),
    `no replacement reported:\n${lines.join('\n')}`,
  );
  const neighbour = await capsuleOf('minimal');
  const id = await capsuleOf(result.template.name);

  // The runtime's files landed inside the capsule, not on the symlinks' host targets.
  const etc = await sh(id, 'cat /etc/hosts | tail -1; test -L /etc/hosts && echo link; cat /etc/resolv.conf | head -1');
  assert.equal(etc.code, 0, etc.err);
  assert.match(etc.out, new RegExp(`127\\.0\\.1\\.1\\s+${id}\\n`));
  assert.doesNotMatch(etc.out, /link/);
  assert.ok(!existsSync(ESCAPE), `${ESCAPE} was created on the host`);
  const shadowAfter = lstatSync('/etc/shadow');
  assert.equal(shadowAfter.mtimeMs, shadowBefore.mtimeMs, '/etc/shadow of the host changed');
  assert.equal(shadowAfter.ino, shadowBefore.ino);
  const dev = await sh(
    id,
    'test -c /dev/null && echo null-ok; test -d /opt/wrenn && echo opt-ok; ls / | grep -c boot || true',
  );
  assert.equal(dev.code, 0, dev.err);
  assert.match(dev.out, /null-ok\nopt-ok\n/);

  // The device node of the layer never arrived, and none can be made inside.
  const node = await sh(
    id,
    'test -e /evil-sda && echo present; mknod /tmp/sda b 8 0 && head -c 1 /tmp/sda && echo read-disk',
  );
  assert.doesNotMatch(node.out, /present|read-disk/, node.out + node.err);
  // A setuid-root program of the image gives root inside the capsule (as in Docker), which is a
  // host uid of the capsule's own range; that root still cannot mount or reach the host.
  if (haveMuslGcc) {
    const suid = await sh(id, 'stat -c %a /usr/bin/suid-probe; /usr/bin/suid-probe', 'user');
    assert.equal(suid.code, 0, suid.err);
    const [mode, euid, map] = suid.out.split('\n');
    assert.equal(mode, '4755', suid.out);
    assert.equal(euid, '0', suid.out);
    const hostBase = Number(map?.trim().split(/\s+/)[1]);
    assert.ok(hostBase >= 100_000, `capsule root is host uid ${hostBase}`);
  } else console.log('# musl-gcc (Debian musl-tools) is missing: the setuid probe is skipped');
  const rootInside = await sh(
    id,
    'mount -t tmpfs x /mnt 2>&1 && echo mounted; cat /proc/1/root/etc/shadow 2>&1 | head -1',
  );
  assert.doesNotMatch(rootInside.out, /mounted/);
  assert.doesNotMatch(rootInside.out, /^root:[^*!x]/m);

  const ok = await sh(neighbour, 'echo alive');
  assert.equal(ok.out, 'alive\n');
});
