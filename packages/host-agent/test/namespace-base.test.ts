// SLOW THE FIRST TIME: builds the `base` template (Debian bookworm minbase via debootstrap from
// this host's apt mirror, a minute or more) into the test image cache
// (/var/cache/wrenn-test-images, or WRENN_TEST_IMAGES), then reuses it on later runs.
// Set WRENN_SKIP_BASE=1 to skip it (the reason is printed).

import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { HOST_ID_BASE } from '../src/rootfs/index.js';
import { execInCapsule } from '../src/runtimes/namespace/index.js';
import type { RuntimeHandle } from '../src/runtimes/runtime.js';
import { makeEnv, rand, spec } from './namespace-fixtures.js';

const skip =
  process.env.WRENN_SKIP_BASE === '1'
    ? 'WRENN_SKIP_BASE=1: the base template (debootstrap) test was skipped on request'
    : false;
if (skip) console.log(`# ${skip}`);

const env = makeEnv();
after(async () => {
  const left = env.leftovers();
  await env.cleanup();
  assert.deepEqual(left, []);
});

test('base template (Debian bookworm, built on first use and cached) runs python3, with a sudo-capable user', {
  skip,
  timeout: 15 * 60_000,
}, async (t) => {
  const t0 = performance.now();
  const m = await env.store.ensureTemplate('base', { onProgress: (l) => process.stderr.write(`[base build] ${l}\n`) });
  console.log(
    `# base template ready in ${((performance.now() - t0) / 1000).toFixed(1)} s (${(m.size / 1048576).toFixed(0)} MiB, built ${m.created_at})`,
  );
  const [rootfs = ''] = await env.store.layerDirs(m); // base/rootfs, or base.v<version>/rootfs after a recipe change
  // sudo keeps its setuid bit through the ownership shift.
  const sudo = statSync(join(rootfs, 'usr/bin/sudo'));
  assert.equal(sudo.uid, HOST_ID_BASE);
  assert.equal(sudo.mode & 0o4000, 0o4000, 'sudo lost its setuid bit');

  const rt = env.runtime();
  let h: RuntimeHandle | undefined;
  t.after(async () => {
    if (h) await rt.destroy(h);
  });
  h = await rt.create(spec(`cl-t${rand()}`, 'base'));
  console.log(`# base capsule with envd created in ${rt.lastCreateTimings?.total.toFixed(0)} ms`);
  const py = await execInCapsule(h, ['python3', '-c', 'print(1+1)'], { timeoutMs: 30_000 });
  assert.equal(py.code, 0, py.stderr);
  assert.equal(py.stdout, '2\n');
  // `python` too (python-is-python3): E2B's templates and SDK tests run `python -m http.server`.
  const python = await execInCapsule(h, ['python', '-c', 'import sys; print(sys.version_info[0])'], {
    timeoutMs: 30_000,
  });
  assert.equal(python.stdout, '3\n', python.stderr);
  const user = await execInCapsule(h, ['sh', '-c', 'id -un; sudo -n id -u'], {
    uid: 1000,
    gid: 1000,
    cwd: '/home/user',
    env: { HOME: '/home/user' },
    timeoutMs: 30_000,
  });
  assert.equal(user.code, 0, user.stderr);
  assert.equal(user.stdout, 'user\n0\n');
  // Terminals work: a private devpts instance behind /dev/ptmx.
  const pty = await execInCapsule(h, ['python3', '-c', 'import os; m, s = os.openpty(); print(os.ttyname(s))'], {
    timeoutMs: 30_000,
  });
  assert.match(pty.stdout, /^\/dev\/pts\/\d+\n$/, pty.stderr);
  const tools = await execInCapsule(
    h,
    [
      'sh',
      '-c',
      'curl --version >/dev/null && git --version >/dev/null && pip3 --version >/dev/null && ps -e >/dev/null && echo tools-ok',
    ],
    { timeoutMs: 30_000 },
  );
  assert.equal(tools.stdout.trim(), 'tools-ok', tools.stderr);
});
