// Volumes on QEMU capsules of `wrenn up` (software emulation here; network slot 14, like
// fork-qemu-live): a VM mounts the volume's host directory over virtio-9p (QEMU exports an
// idmapped, nosuid, nodev bind of it), so one volume is shared read-write by namespace capsules
// and several VMs at the same time. Shows: a file written in one VM is read at once by a running
// namespace capsule and by a second running VM (and the reverse), with the same owners in all;
// the content API reads it meanwhile; such a VM pauses by freezing and is not forked (409).
// Hostile, as root in the VM: device nodes it makes cannot be opened anywhere (nodev on every
// mount, the host's included), a set-uid binary it plants runs without privilege in the other VM
// and in a namespace capsule and is not root's on the host, symlinks and '..' resolve inside each
// user's own view, ids outside the capsule range cannot be stored, filling the volume gives
// ENOSPC; a neighbour capsule keeps working. VMs are made through the native API (E2B's has no runtime).
import assert from 'node:assert/strict';
import { existsSync, lstatSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Sandbox, Volume } from 'e2b';
import { hasQemu, type LiveSystem, SHARED_IMAGES, startLive } from '../e2b-live.js';

const SLOT = 14;
const HOST_ID_BASE = 100_000;

describe('volumes shared by QEMU and namespace capsules against wrenn up', {
  skip: hasQemu ? false : 'no qemu-system-x86_64',
}, () => {
  let sys: LiveSystem;
  const made: string[] = [];
  const opts = () => ({ ...sys.sdk(), timeoutMs: 600_000 });
  const root = { user: 'root' as const };
  const api = (method: string, path: string, body?: unknown) =>
    fetch(`${sys.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${sys.adminKey}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  /** A capsule through the native API; returns the response (201 or the refusal). */
  const create = async (runtime: 'qemu' | 'namespace', volume: string, path: string) => {
    const r = await api('POST', '/v1/capsules', {
      template: 'minimal',
      runtime,
      ...(runtime === 'qemu' ? { memory_mb: 256 } : {}),
      timeout_sec: 900,
      volume_mounts: [{ name: volume, path }],
    });
    const body = (await r.json()) as { id?: string; volume_mounts?: unknown; error?: { message: string } };
    if (body.id) made.push(body.id);
    return { status: r.status, body };
  };
  const connect = async (id: string) => Sandbox.connect(id, opts());
  /** stdout of a command that may fail (exit code and stderr folded in). */
  const run = async (s: Sandbox, cmd: string, user?: { user: 'root' }) => {
    const r = await s.commands.run(cmd, user).catch((e: { exitCode?: number; stdout?: string; stderr?: string }) => e);
    return { exit: r.exitCode ?? -1, out: `${r.stdout ?? ''}`, err: `${r.stderr ?? ''}` };
  };

  let vol: Volume;
  let hostData: string;
  let ns: Sandbox;
  let vm1: Sandbox;
  let vm2: Sandbox;
  let vm1Id: string;
  let uid: number;

  before(async () => {
    sys = await startLive({ db: 'sqlite', slot: SLOT, imagesDir: SHARED_IMAGES });
  });
  after(async () => {
    for (const id of made) await api('DELETE', `/v1/capsules/${id}`).catch(() => undefined);
    await sys?.close();
  });

  it('one volume read-write in a namespace capsule and two VMs at once, owners kept', {
    timeout: 900_000,
  }, async () => {
    // 32 MiB: small enough for the VM to fill it quickly (the hostile test).
    const res = await fetch(`${sys.url}/volumes`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': sys.adminKey },
      body: JSON.stringify({ name: 'qshare', sizeMB: 32 }),
    });
    assert.equal(res.status, 201, await res.clone().text());
    vol = await Volume.connect(((await res.json()) as { volumeID: string }).volumeID, opts());
    hostData = join(sys.dataDir, 'volumes', vol.volumeId, 'mnt', 'data');
    const n = await create('namespace', 'qshare', '/data');
    assert.equal(n.status, 201, JSON.stringify(n.body));
    ns = await connect(n.body.id as string);
    await ns.commands.run('mkdir -p /data/d && echo from-ns > /data/d/ns.txt', root);
    await ns.commands.run('echo user-ns > /data/user-ns.txt');
    uid = Number((await ns.commands.run('id -u')).stdout.trim());

    const t0 = Date.now();
    const [a, b] = await Promise.all([create('qemu', 'qshare', '/data'), create('qemu', 'qshare', '/mnt/other')]);
    assert.equal(a.status, 201, JSON.stringify(a.body));
    assert.equal(b.status, 201, JSON.stringify(b.body));
    console.log(`# two QEMU (TCG) capsules sharing the volume up in ${Date.now() - t0} ms`);
    assert.deepEqual(a.body.volume_mounts, [{ name: 'qshare', path: '/data' }]);
    vm1Id = a.body.id as string;
    vm1 = await connect(vm1Id);
    vm2 = await connect(b.body.id as string);

    const mounts = (await vm1.commands.run('grep " /data " /proc/mounts', root)).stdout;
    assert.match(mounts, /^wrenn-vol0 \/data 9p .*nosuid.*nodev/m, mounts);
    assert.equal((await vm1.commands.run('cat /data/d/ns.txt /data/user-ns.txt')).stdout, 'from-ns\nuser-ns\n');
    assert.equal(
      (await vm1.commands.run('stat -c %u /data/d/ns.txt /data/user-ns.txt')).stdout,
      `0\n${uid}\n`,
      'the VM sees the owners the namespace capsule wrote',
    );
    assert.equal((await vm1.commands.run('id -u')).stdout.trim(), String(uid), 'the same default user id in both');

    // Written in VM 1, read at once by the running namespace capsule and VM 2; and back.
    await vm1.commands.run('echo user-vm >> /data/user-ns.txt && echo vm1 > /data/vm1.txt');
    await vm1.commands.run('echo rootvm > /data/d/root-vm.txt', root);
    assert.equal((await ns.commands.run('cat /data/vm1.txt /data/user-ns.txt')).stdout, 'vm1\nuser-ns\nuser-vm\n');
    assert.equal((await vm2.commands.run('cat /mnt/other/vm1.txt')).stdout, 'vm1\n');
    assert.equal(
      (await ns.commands.run('stat -c %u /data/vm1.txt /data/d/root-vm.txt')).stdout,
      `${uid}\n0\n`,
      'the namespace capsule sees the owners the VM wrote',
    );
    assert.equal(
      (await vm2.commands.run('stat -c %u /mnt/other/vm1.txt /mnt/other/d/root-vm.txt')).stdout,
      `${uid}\n0\n`,
    );
    await vm2.commands.run('echo vm2 >> /mnt/other/vm1.txt');
    await ns.commands.run('echo ns >> /data/vm1.txt');
    assert.equal(
      (await vm1.commands.run('cat /data/vm1.txt')).stdout,
      'vm1\nvm2\nns\n',
      'VM 1 sees both writers at once',
    );
    assert.equal(await vol.readFile('/vm1.txt', { apiUrl: sys.url }), 'vm1\nvm2\nns\n', 'the content API too');
    // On the host the files are in the canonical range, whoever wrote them.
    assert.equal(lstatSync(join(hostData, 'vm1.txt')).uid, HOST_ID_BASE + uid);
    assert.equal(lstatSync(join(hostData, 'd', 'root-vm.txt')).uid, HOST_ID_BASE);

    // A VM with a 9p volume cannot write its memory out: not forked, paused by freezing.
    const fork = await api('POST', `/v1/capsules/${vm1Id}/fork`, { count: 1 });
    assert.equal(fork.status, 409, await fork.text());
    const paused = await api('POST', `/v1/capsules/${vm1Id}/pause`, {});
    assert.equal(paused.status, 200, await paused.clone().text());
    assert.equal(((await paused.json()) as { state: string }).state, 'paused');
    assert.equal((await vm2.commands.run('cat /mnt/other/d/ns.txt')).stdout, 'from-ns\n', 'VM 2 runs on');
    const resumed = await api('POST', `/v1/capsules/${vm1Id}/resume`, {});
    assert.equal(resumed.status, 200, await resumed.text());
    assert.equal((await vm1.commands.run('cat /data/d/ns.txt')).stdout, 'from-ns\n');
    const del = await api('DELETE', `/v1/volumes/${vol.volumeId}`);
    assert.equal(del.status, 409, 'a volume in use is not deleted');
  });

  it('hostile: root in a VM cannot reach past its volume; the other users and a neighbour are unaffected', {
    timeout: 600_000,
  }, async () => {
    assert.ok(vm1 && vm2 && ns, 'needs the capsules of the first test');
    const neighbour = await Sandbox.create('minimal', opts());
    made.push(neighbour.sandboxId);

    // Device nodes: made through QEMU on the host's file system, but nodev everywhere.
    const mk = await run(vm1, 'mknod /data/mem c 1 1 && mknod /data/sda b 8 0 && echo made', root);
    if (mk.out.includes('made')) {
      assert.notEqual((await run(vm1, 'head -c 1 /data/mem | wc -c', root)).out.trim(), '1', 'opened in the VM');
      assert.notEqual((await run(vm2, 'head -c 1 /mnt/other/mem | wc -c', root)).out.trim(), '1', 'opened in VM 2');
      assert.notEqual((await run(ns, 'head -c 1 /data/mem | wc -c', root)).out.trim(), '1', 'opened in the capsule');
      for (const f of ['mem', 'sda']) {
        if (!existsSync(join(hostData, f))) continue;
        assert.throws(() => openSync(join(hostData, f), 'r'), /EACCES|EPERM/, `host open of ${f}`);
      }
      await assert.rejects(vol.readFile('/mem', { apiUrl: sys.url }), 'the content API refuses it');
    } else console.log(`# mknod in the VM refused: ${mk.err.trim()}`);

    // A set-uid root binary planted by root in VM 1: busybox's su runs only with euid 0.
    const planted = await run(
      vm1,
      'mkdir -p /data/s && cp /bin/busybox /data/s/busybox && chown 0:0 /data/s/busybox && chmod 4755 /data/s/busybox && echo ok',
      root,
    );
    assert.match(planted.out, /ok/, planted.err);
    const su = 'su -c "id -u" root </dev/null 2>&1; true';
    assert.match((await run(vm2, `/mnt/other/s/busybox ${su}`)).out, /must be suid/, 'set-uid honoured in VM 2');
    assert.match((await run(ns, `/data/s/busybox ${su}`)).out, /must be suid/, 'set-uid honoured in the capsule');
    assert.match((await run(ns, 'grep " /data " /proc/mounts', root)).out, /nosuid/);
    assert.match((await run(vm2, 'grep " /mnt/other " /proc/mounts', root)).out, /nosuid/);
    const st = lstatSync(join(hostData, 's', 'busybox'));
    assert.equal(st.uid, HOST_ID_BASE, 'stored as the capsule range root, not the host root');
    assert.ok(st.mode & 0o4000, 'the set-uid bit itself is kept (it is inert everywhere)');

    // Ids outside the capsule range cannot be stored; root's own id lands canonically.
    const far = await run(vm1, 'touch /data/far && chown 70000:70000 /data/far', root);
    assert.notEqual(far.exit, 0, 'chown to an unmapped id succeeded');
    assert.equal(lstatSync(join(hostData, 'far')).uid, HOST_ID_BASE);

    // Symlinks and '..' resolve inside each user's own view.
    await run(
      vm1,
      'ln -s / /data/rootlink && ln -s ../../../../../../../../etc /data/up && ln -s ../owners /data/owners-link',
      root,
    );
    assert.equal(
      (await run(ns, 'cat /data/rootlink/etc/hostname', root)).out,
      (await run(ns, 'cat /etc/hostname', root)).out,
      "the namespace capsule's own /etc",
    );
    assert.notEqual((await run(vm2, 'cat /mnt/other/owners-link', root)).exit, 0, "the host's files beside data/");
    assert.equal((await run(vm1, 'ls /data/../../.. | grep -c volume.img', root)).out.trim(), '0');
    await assert.rejects(vol.readFile('/rootlink/etc/passwd', { apiUrl: sys.url }));
    await assert.rejects(vol.readFile('/owners-link', { apiUrl: sys.url }));

    // Filling the volume: ENOSPC in the VM, the others keep their files and write on.
    const fill = await run(vm1, 'dd if=/dev/zero of=/data/fill bs=1M count=64 2>&1; echo rc=$?', root);
    assert.match(fill.out, /No space left|rc=1/, fill.out);
    await run(vm1, 'rm -f /data/fill', root);
    await ns.commands.run('echo still >> /data/vm1.txt');
    assert.match((await vm2.commands.run('tail -n 1 /mnt/other/vm1.txt')).stdout, /still/);
    assert.equal((await neighbour.commands.run('echo alive')).stdout, 'alive\n');
    await Promise.all([vm1.kill(), vm2.kill(), ns.kill(), neighbour.kill()]);
  });
});
