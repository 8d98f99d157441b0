#!/usr/bin/env node
import { execFileSync } from 'node:child_process';
// Per-capsule host work as the host fills (issue 15; prints JSON): with N capsules' worth of host
// state already present (network namespace + veth + internet switch through the agent's
// NetworkManager, a loop-mounted ext4 disk as quota-disk.ts makes it, cgroups as cgroups.ts makes
// them), the cost of one more capsule's pieces: network create/destroy, the firewall edits alone
// (ipset member, iptables rule), `ip -n` (which copies the mount table) versus nsenter --net,
// disk mount/unmount as the agent does it and with util-linux, cgroup create/remove, and a
// mount-namespace copy (what wrenn-nsinit's unshare does per capsule).
// Wall time p50 per step, plus CPU of the agent process and its children over all samples.
// Run as root after `npm run build`; BENCH_LEVELS=0,250,500,1000 BENCH_SAMPLES=10. Uses names of
// its own (netns whs-*, links wh*, chains WHS-*, cgroup parent wrenn-hostscale) and removes
// everything it made, also on failure.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyHostSettings, hostSettings } from '../packages/host-agent/dist/src/host-tuning.js';
import { run } from '../packages/host-agent/dist/src/network/exec.js';
import { NetworkManager } from '../packages/host-agent/dist/src/network/index.js';
import { removeTree } from '../packages/host-agent/dist/src/rootfs/remove-tree.js';
import { CapsuleCgroups, CONTROLLERS } from '../packages/host-agent/dist/src/runtimes/namespace/cgroups.js';
import { IdRangeStore, idRangeConfig } from '../packages/host-agent/dist/src/runtimes/namespace/id-ranges.js';
import { loopMount } from '../packages/native/dist/src/index.js';

const LEVELS = (process.env.BENCH_LEVELS ?? '0,250,500,1000').split(',').map(Number);
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 10);
const WITH_DISKS = process.env.BENCH_DISKS !== '0';
const NAMES = { netnsPrefix: 'whs-', ifPrefix: 'wh', chainPrefix: 'WHS' };
const CG_PARENT = 'wrenn-hostscale';
const TICK_MS = 1000 / 100; // USER_HZ

const dir = mkdtempSync(join(tmpdir(), 'wrenn-host-scale-'));
const round = (x) => Math.round(x * 100) / 100;
const p50 = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
/** CPU ms of this process and its reaped children so far (utime+stime+cutime+cstime). */
function cpuMs() {
  const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * TICK_MS;
}
function mountCount() {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').length - 1;
}
async function sh(cmd, args, input = '') {
  const r = await run(cmd, args, input);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

await applyHostSettings(hostSettings());
const net = new NetworkManager({
  dataDir: join(dir, 'data'),
  pool: '10.230.0.0/19',
  names: NAMES,
  metadataPort: 31299,
  warmPool: 0,
  rateMbit: 200,
  dnsServers: [],
});
await net.init();
const image = join(dir, 'blank.img');
if (WITH_DISKS) {
  execFileSync('truncate', ['-s', '64M', image]);
  execFileSync('mkfs.ext4', ['-q', '-F', '-m', '0', '-E', 'lazy_itable_init=1,lazy_journal_init=1', image]);
}

const idRanges = new IdRangeStore(join(dir, 'data'), idRangeConfig());
const present = []; // ids of filler capsules
let seq = 0;
async function addCapsule(id) {
  await net.create({ id, internet: true });
  new CapsuleCgroups(id, '/sys/fs/cgroup', CG_PARENT).create({ vcpus: 1, memoryMb: 256, pidsMax: 64 });
  await idRanges.allocate(id);
  if (WITH_DISKS) await attachDisk(id);
}
function diskDir(id) {
  const d = join(dir, 'disks', id);
  mkdirSync(d, { recursive: true });
  execFileSync('cp', ['--sparse=always', image, join(d, 'disk.img')]);
  mkdirSync(join(d, 'disk'));
  return d;
}
/** As quota-disk.ts mounts a capsule's disk (loop device and mount(2) through the addon). */
async function attachDisk(id) {
  const d = diskDir(id);
  await loopMount(join(d, 'disk.img'), join(d, 'disk'), 'ext4', 'loop,nodev,discard');
}
/** What quota-disk.ts did until 2026-12: util-linux mount -o loop. */
async function attachDiskUtilLinux(id) {
  const d = diskDir(id);
  await sh('mount', ['-t', 'ext4', '-o', 'loop,nodev,discard', join(d, 'disk.img'), join(d, 'disk')]);
}
/** As a destroy removes the sandbox dir (remove-tree.ts: unmount what is below, then rm). */
async function detachDisk(id) {
  await removeTree(join(dir, 'disks', id), { mounts: [join(dir, 'disks', id, 'disk')] });
}
async function detachDiskUtilLinux(id) {
  const d = join(dir, 'disks', id);
  await sh('umount', ['-l', join(d, 'disk')]);
  rmSync(d, { recursive: true, force: true });
}

async function measure(label, samples, fn) {
  const wall = [];
  const c0 = cpuMs();
  for (let i = 0; i < samples; i++) {
    const t0 = performance.now();
    await fn(i);
    wall.push(performance.now() - t0);
  }
  return [label, { p50_ms: round(p50(wall)), cpu_ms_per_op: round((cpuMs() - c0) / samples) }];
}

const result = {
  bench: 'host-scale',
  samples: SAMPLES,
  disks: WITH_DISKS,
  cores: (await import('node:os')).cpus().length,
  levels: [],
};
try {
  for (const level of LEVELS) {
    const tf = performance.now();
    while (present.length < level) {
      const id = `hs-${seq++}`;
      await addCapsule(id);
      present.push(id);
    }
    const fillMs = performance.now() - tf;
    const probeNs = (await net.get(present[0] ?? '')) ?? undefined;
    const steps = [];
    // The network of one more capsule, made and removed as the agent does it.
    const ids = Array.from({ length: SAMPLES }, () => `hs-${seq++}`);
    steps.push(await measure('network_create', SAMPLES, (i) => net.create({ id: ids[i], internet: true })));
    steps.push(await measure('network_destroy', SAMPLES, (i) => net.destroy(ids[i])));
    // The internet switch alone, as a create or destroy changes it now: one ipset restore.
    steps.push(
      await measure('ipset_switch', SAMPLES, () =>
        sh('ipset', ['restore'], 'add WHS-NOINET 10.230.255.254 -exist\ndel WHS-NOINET 10.230.255.254 -exist\n'),
      ),
    );
    // One rule added and deleted by iptables-restore --noflush (allowOut entries; the internet
    // switch of every capsule until 2026-12).
    steps.push(
      await measure('iptables_restore_rule', SAMPLES, () =>
        sh(
          'iptables-restore',
          ['-w', '--noflush'],
          `*filter\n-A WHS-EGRESS -i wh9999 -j DROP\n-D WHS-EGRESS -i wh9999 -j DROP\nCOMMIT\n`,
        ),
      ),
    );
    if (probeNs) {
      steps.push(
        await measure('ip_netns_batch', SAMPLES, () =>
          sh('ip', ['-n', probeNs.netnsName, '-batch', '-'], 'link show lo\n'),
        ),
      );
      steps.push(
        await measure('nsenter_net_ip_batch', SAMPLES, () =>
          sh('nsenter', [`--net=${probeNs.netnsPath}`, 'ip', '-batch', '-'], 'link show lo\n'),
        ),
      );
    }
    steps.push(await measure('mount_ns_copy', SAMPLES, () => sh('unshare', ['-m', 'true'])));
    if (WITH_DISKS) {
      const dids = Array.from({ length: SAMPLES }, () => `hs-d${seq++}`);
      steps.push(await measure('disk_mount', SAMPLES, (i) => attachDisk(dids[i])));
      steps.push(await measure('disk_umount', SAMPLES, (i) => detachDisk(dids[i])));
      const uids = Array.from({ length: SAMPLES }, () => `hs-u${seq++}`);
      steps.push(await measure('disk_mount_util_linux', SAMPLES, (i) => attachDiskUtilLinux(uids[i])));
      steps.push(await measure('disk_umount_util_linux', SAMPLES, (i) => detachDiskUtilLinux(uids[i])));
    }
    const cids = Array.from({ length: SAMPLES }, () => `hs-c${seq++}`);
    steps.push(
      await measure('cgroup_create', SAMPLES, (i) =>
        new CapsuleCgroups(cids[i], '/sys/fs/cgroup', CG_PARENT).create({ vcpus: 1, memoryMb: 256, pidsMax: 64 }),
      ),
    );
    // A capsule's host uid/gid range claimed and released (id-ranges.ts, one file per claim).
    const rids = Array.from({ length: SAMPLES }, () => `hs-r${seq++}`);
    steps.push(await measure('id_range_claim', SAMPLES, (i) => idRanges.allocate(rids[i])));
    steps.push(await measure('id_range_release', SAMPLES, (i) => idRanges.release(rids[i])));
    steps.push(
      await measure('cgroup_remove', SAMPLES, (i) => new CapsuleCgroups(cids[i], '/sys/fs/cgroup', CG_PARENT).remove()),
    );
    result.levels.push({
      capsules: level,
      host_mounts: mountCount(),
      fill_ms_per_capsule: level ? round(fillMs / Math.max(1, level - (result.levels.at(-1)?.capsules ?? 0))) : 0,
      ...Object.fromEntries(steps),
    });
    console.error(JSON.stringify(result.levels.at(-1)));
  }
} finally {
  // Everything goes, whatever failed above.
  await net.removeAll().catch((e) => console.error('network cleanup:', e.message));
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n').reverse()) {
    const target = line.split(' ')[4];
    if (target?.startsWith(dir)) execFileSync('umount', ['-l', target], { stdio: 'ignore' });
  }
  for (const c of CONTROLLERS) {
    try {
      const parent = join('/sys/fs/cgroup', c, CG_PARENT);
      for (const e of readdirSync(parent, { withFileTypes: true }))
        if (e.isDirectory()) rmdirSync(join(parent, e.name));
      rmdirSync(parent);
    } catch {
      // not made under this controller, or co-mounted with one already cleaned
    }
  }
  rmSync(dir, { recursive: true, force: true });
}
console.log(JSON.stringify(result, null, 2));
