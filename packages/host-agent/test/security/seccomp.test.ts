// Hostile probe of the capsule seccomp filter (seccomp-policy.c): a static C program
// (test/fixtures/seccomp-probe.c) tries, as root and as uid 1000 inside a real capsule, every
// syscall the filter must refuse, with harmless arguments. The same probe runs unfiltered on the
// host in a fresh user namespace (`unshare -Ur`, i.e. what root in a capsule could do without the
// filter) so the output shows which refusals are the filter's and which the kernel's own.
// A template with nestedUserNamespaces + perfEvents opens exactly those, and a neighbour capsule
// keeps answering throughout. Needs root, gcc and libc6-dev (static libc).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readManifest, writeManifest } from '../../src/rootfs/manifest.js';
import { TemplateStore } from '../../src/rootfs/template-store.js';
import { execInCapsule, type NamespaceRuntime } from '../../src/runtimes/namespace/index.js';
import type { RuntimeHandle } from '../../src/runtimes/runtime.js';
import { IMAGES_CACHE, makeEnv, rand, spec } from '../namespace-fixtures.js';
import { compileStaticFile } from './static-probe.js';

const here = dirname(fileURLToPath(import.meta.url));
// dist/test/security -> the package's test/fixtures
const PROBE_SOURCE = resolve(here, '../../../test/fixtures/seccomp-probe.c');
const PROBE_IN_CAPSULE = '/usr/local/bin/seccomp-probe';

// Every probe the filter must refuse, and how: EPERM (the default), ENOSYS (clone3 and numbers
// the policy does not know), exit code 1 = EPERM from a child, SIGSYS for foreign ABIs.
const REFUSED: Record<string, string> = {
  keyctl: 'EPERM',
  add_key: 'EPERM',
  request_key: 'EPERM',
  bpf: 'EPERM',
  init_module: 'EPERM',
  finit_module: 'EPERM',
  delete_module: 'EPERM',
  kexec_load: 'EPERM',
  kexec_file_load: 'EPERM',
  name_to_handle_at: 'EPERM',
  open_by_handle_at: 'EPERM',
  perf_event_open: 'EPERM',
  userfaultfd: 'EPERM',
  iopl: 'EPERM',
  ioperm: 'EPERM',
  swapon: 'EPERM',
  swapoff: 'EPERM',
  reboot: 'EPERM',
  acct: 'EPERM',
  quotactl: 'EPERM',
  syslog: 'EPERM',
  settimeofday: 'EPERM',
  clock_settime: 'EPERM',
  adjtimex: 'EPERM',
  mount: 'EPERM',
  umount2: 'EPERM',
  pivot_root: 'EPERM',
  move_mount: 'EPERM',
  open_tree: 'EPERM',
  fsopen: 'EPERM',
  io_uring_setup: 'EPERM',
  io_uring_enter: 'EPERM',
  io_uring_register: 'EPERM',
  pidfd_getfd: 'EPERM',
  'unshare-user': 'exited-1',
  'clone-user': 'exited-1',
  'unshare-net': 'EPERM',
  'unshare-mnt': 'EPERM',
  setns: 'EPERM',
  clone3: 'ENOSYS',
  'syscall-1000': 'ENOSYS',
  'i386-int80': 'killed-SYS',
  x32: 'killed-SYS',
  'socket-vsock': 'EPERM',
  'personality-addr-no-randomize': 'EPERM',
};
const ALLOWED = ['allowed-socket-inet', 'allowed-personality-query', 'allowed-fork', 'allowed-unshare-files'];

const env = makeEnv();
const rt: NamespaceRuntime = env.runtime();
const handles = new Set<RuntimeHandle>();
const workDir = mkdtempSync('/tmp/wrenn-seccomp-probe-');
const probeBinary = join(workDir, 'seccomp-probe');
const switchedTemplate = `seccomp-switches-${rand()}`;
let neighbour: RuntimeHandle;
let capsule: RuntimeHandle;
let unfiltered: Map<string, string> | undefined;

function parse(out: string): Map<string, string> {
  return new Map(
    out
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const [k = '', v = ''] = l.split(' ');
        return [k, v];
      }),
  );
}

async function start(template: string): Promise<RuntimeHandle> {
  const h = await rt.create(spec(`cl-sc${rand()}`, template));
  handles.add(h);
  return h;
}

async function sh(h: RuntimeHandle, script: string, opts: Parameters<typeof execInCapsule>[2] = {}) {
  return execInCapsule(h, ['/bin/sh', '-c', script], { timeoutMs: 30_000, ...opts });
}

/** Copies the static probe into the capsule's disk (base64 through the exec's stdin). */
async function installProbe(h: RuntimeHandle): Promise<void> {
  const r = await sh(h, `base64 -d > ${PROBE_IN_CAPSULE} && chmod 755 ${PROBE_IN_CAPSULE}`, {
    input: readFileSync(probeBinary).toString('base64'),
  });
  assert.equal(r.code, 0, r.stderr);
}

async function neighbourAnswers(): Promise<void> {
  assert.equal(await rt.isAlive(neighbour), true, 'the neighbour capsule died');
  const r = await sh(neighbour, 'wget -q -S -O /dev/null http://127.0.0.1:49983/health 2>&1 | head -1');
  assert.match(r.stdout, /HTTP\/1\.1 204/, `neighbour envd: ${r.stdout}${r.stderr}`);
}

before(async () => {
  compileStaticFile(PROBE_SOURCE, probeBinary);
  try {
    // What root in a capsule would get from the kernel alone: a fresh user namespace, no filter.
    unfiltered = parse(execFileSync('unshare', ['-Ur', '--fork', probeBinary], { encoding: 'utf8' }));
  } catch (err) {
    console.log(`# cannot run the probe unfiltered on this host (unshare -Ur): ${(err as Error).message}`);
  }
  neighbour = await start('minimal');
  capsule = await start('minimal');
  await installProbe(capsule);
});

after(async () => {
  for (const h of handles) await rt.destroy(h).catch((err) => console.error('destroy', h.id, err));
  await env.store.deleteTemplate(switchedTemplate).catch(() => undefined);
  const left = env.leftovers();
  await env.cleanup();
  rmSync(workDir, { recursive: true, force: true });
  assert.deepEqual(left, [], `left behind after the suite: ${left.join(', ')}`);
});

test('the init, envd and exec-ed processes all run under the filter, as root and as uid 1000', async () => {
  for (const uid of [0, 1000]) {
    const r = await sh(capsule, 'for p in 1 2 self; do grep ^Seccomp: /proc/$p/status; done', { uid, gid: uid });
    assert.equal(r.code, 0, r.stderr);
    // PID 1 = wrenn-init, PID 2 = envd (started by the init), self = this exec-ed shell.
    assert.deepEqual(r.stdout.trim().split('\n'), ['Seccomp:\t2', 'Seccomp:\t2', 'Seccomp:\t2'], `uid ${uid}`);
  }
  const comm = await sh(capsule, 'cat /proc/1/comm; tr "\\0" " " < /proc/2/cmdline');
  assert.match(comm.stdout, /^wrenn-init\n.*envd/);
  await neighbourAnswers();
});

for (const uid of [0, 1000]) {
  test(`every denied syscall is refused inside a capsule (uid ${uid}); what must work still works`, async () => {
    const r = await execInCapsule(capsule, [PROBE_IN_CAPSULE], { uid, gid: uid, timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    const got = parse(r.stdout);
    const rows = Object.keys(REFUSED).map(
      (k) =>
        `#   ${k.padEnd(30)} capsule: ${(got.get(k) ?? '-').padEnd(11)} unfiltered: ${unfiltered?.get(k) ?? 'n/a'}`,
    );
    console.log(
      `# probe as uid ${uid} (unfiltered = fresh user namespace on the host, no seccomp):\n${rows.join('\n')}`,
    );
    const wrong = Object.entries(REFUSED).filter(([k, want]) => got.get(k) !== want);
    assert.deepEqual(
      wrong.map(([k, want]) => `${k}: ${got.get(k)} (want ${want})`),
      [],
      'refused the wrong way or not at all',
    );
    for (const k of ALLOWED) assert.equal(got.get(k), 'ok', `${k} must keep working`);
    assert.equal(got.get('status-seccomp'), '2');
    if (unfiltered) {
      // The filter, not the kernel's capability checks, refuses these: unfiltered they get through.
      const byFilter = Object.keys(REFUSED).filter((k) => unfiltered?.get(k) !== got.get(k));
      console.log(`# refused by the filter where the kernel alone would not: ${byFilter.join(' ')}`);
      const absent = Object.keys(REFUSED).filter((k) => unfiltered?.get(k) === 'ENOSYS' && k !== 'syscall-1000');
      if (absent.length)
        console.log(
          `# this kernel is built without ${absent.join(' ')} (ENOSYS unfiltered): only the filter's refusal is seen`,
        );
      for (const k of ['keyctl', 'name_to_handle_at', 'unshare-user', 'unshare-net', 'io_uring_setup', 'clone3'])
        assert.ok(byFilter.includes(k), `${k}: the kernel alone answers ${unfiltered.get(k)} too`);
    }
    await neighbourAnswers();
  });
}

test("node (envd's runtime) works under the filter: files through libuv without io_uring, child processes via clone after clone3's ENOSYS", async () => {
  const node = [
    '/opt/wrenn/runtime/lib/ld-linux-x86-64.so.2',
    '--library-path',
    '/opt/wrenn/runtime/lib',
    '/opt/wrenn/runtime/bin/node',
  ];
  const script = `
    const fs = require('fs'), cp = require('child_process');
    const f = '/tmp/seccomp-node-' + process.getuid();
    fs.writeFileSync(f, 'x'.repeat(1 << 20));
    fs.readFile(f, 'utf8', (err, d) => {
      if (err) throw err;
      const out = cp.execFileSync('/bin/sh', ['-c', 'echo spawned; grep ^Seccomp: /proc/self/status']).toString();
      const w = new (require('worker_threads').Worker)('process.exit(0)', { eval: true });
      w.on('exit', () => console.log(d.length, out.trim().replace(/\\s+/g, ' '), 'worker-ok'));
    });`;
  for (const uid of [0, 1000]) {
    const r = await execInCapsule(capsule, [...node, '-e', script], {
      uid,
      gid: uid,
      timeoutMs: 60_000,
      env: { HOME: '/tmp' },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), '1048576 spawned Seccomp: 2 worker-ok', `uid ${uid}`);
  }
});

test('Debian tools of the base template run under the filter: apt, dpkg, sudo, python', async (t) => {
  if (!(await env.store.get('base'))) {
    t.skip('the base template is not built in the test image cache (namespace-base builds it)');
    return;
  }
  const h = await start('base');
  const r = await sh(
    h,
    'apt-get check -q && apt-cache showpkg coreutils >/dev/null && dpkg -s coreutils >/dev/null && ' +
      'python3 -c "import os, subprocess; subprocess.run([\'true\'], check=True)" && ' +
      'su user -c "sudo -n id -u" && echo base-ok',
  );
  assert.equal(r.stdout.trim().split('\n').slice(-2).join(' '), '0 base-ok', `${r.stdout}${r.stderr}`);
  await rt.destroy(h);
  handles.delete(h);
});

test('busybox unshare -r fails in a default capsule (no nested user namespaces)', async () => {
  const r = await sh(capsule, 'unshare -r id -u 2>&1; echo "exit $?"');
  assert.match(r.stdout, /Operation not permitted/);
  assert.doesNotMatch(r.stdout, /exit 0/);
});

test('a template with nestedUserNamespaces and perfEvents opens those two and nothing else', async () => {
  // Operators set the switches in the template's manifest.json; snapshots carry them on.
  await rt.snapshot(capsule, switchedTemplate);
  const dir = env.store.templateDir(switchedTemplate);
  const m = await readManifest(dir);
  assert.ok(m);
  await writeManifest(dir, { ...m, nestedUserNamespaces: true, perfEvents: true });
  // A fresh store (the shared one caches manifests) and runtime see the switches.
  const store = new TemplateStore({ imagesDir: IMAGES_CACHE });
  const rt2 = env.runtime({ templates: store });
  const h = await rt2.create(spec(`cl-sc${rand()}`, switchedTemplate));
  handles.add(h);
  assert.deepEqual(h.state.seccompAllow, ['userns', 'perf']);
  for (const uid of [0, 1000]) {
    const userns = await execInCapsule(h, [PROBE_IN_CAPSULE, 'userns'], { uid, gid: uid, timeoutMs: 30_000 });
    assert.equal(userns.stdout, 'unshare-user ok\nuid-map ok\n', `uid ${uid}: ${userns.stdout}${userns.stderr}`);
  }
  const bb = await sh(h, 'unshare -r id -u');
  assert.equal(bb.stdout, '0\n', bb.stderr);
  const probe = parse((await execInCapsule(h, [PROBE_IN_CAPSULE], { timeoutMs: 30_000 })).stdout);
  assert.equal(probe.get('unshare-user'), 'exited-0');
  assert.equal(probe.get('clone-user'), 'exited-0');
  assert.notEqual(probe.get('perf_event_open'), 'EPERM', 'perfEvents leaves perf_event_open to the kernel');
  // Still refused with both switches on.
  for (const k of ['keyctl', 'bpf', 'io_uring_setup', 'userfaultfd', 'pidfd_getfd', 'syslog', 'reboot'])
    assert.equal(probe.get(k), 'EPERM', k);
  assert.equal(probe.get('clone3'), 'ENOSYS');
  // The capsule's own mounts stay the host's: mount is allowed through the filter, the kernel refuses.
  const mnt = await sh(h, 'mount -t tmpfs none /mnt 2>&1; echo "exit $?"');
  assert.doesNotMatch(mnt.stdout, /exit 0/);
  await rt2.destroy(h);
  handles.delete(h);
  await neighbourAnswers();
});
