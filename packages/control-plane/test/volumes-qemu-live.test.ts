// Volumes on QEMU capsules of `wrenn up` (software emulation here; network slot 14, like
// fork-qemu-live): a VM gets the volume's ext4 image as a disk of its own, mounted at the path by
// its init, with the files re-owned to plain ids for its kernel and back for namespace capsules.
// Shows: data and owners written by a namespace capsule read in the VM and the reverse; while a
// VM holds a volume, every second user is refused with 409 (a namespace capsule, another VM, the
// content API); the native capsule JSON lists the mount. Hostile: root in the VM wrecks the ext4
// it holds; the host checks the image (e2fsck) before mounting it again and refuses it, and a
// neighbour capsule keeps working. VMs are made through the native API (E2B's has no runtime).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Sandbox, Volume } from 'e2b';
import { hasQemu, type LiveSystem, startLive } from './e2b-live.js';

const SLOT = 14;

describe('volumes on QEMU capsules against wrenn up', { skip: hasQemu ? false : 'no qemu-system-x86_64' }, () => {
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

  before(async () => {
    sys = await startLive({ db: 'sqlite', slot: SLOT });
  });
  after(async () => {
    for (const id of made) await api('DELETE', `/v1/capsules/${id}`).catch(() => undefined);
    await sys?.close();
  });

  it('moves data and owners between namespace and QEMU capsules; a VM holds its volume alone (409)', {
    timeout: 900_000,
  }, async () => {
    const vol = await Volume.create('qvol', opts());
    // Written in a namespace capsule, by root and by the default user.
    const ns1 = await create('namespace', 'qvol', '/data');
    assert.equal(ns1.status, 201, JSON.stringify(ns1.body));
    const a = await connect(ns1.body.id as string);
    await a.commands.run('mkdir -p /data/d && echo from-ns > /data/d/ns.txt', root);
    await a.commands.run('echo user-ns > /data/user-ns.txt');
    const uid = Number((await a.commands.run('id -u')).stdout.trim());
    await a.kill();

    const t0 = Date.now();
    const vm1 = await create('qemu', 'qvol', '/data');
    assert.equal(vm1.status, 201, JSON.stringify(vm1.body));
    console.log(`# QEMU (TCG) capsule with a volume up in ${Date.now() - t0} ms`);
    assert.deepEqual(vm1.body.volume_mounts, [{ name: 'qvol', path: '/data' }]);
    const v = await connect(vm1.body.id as string);
    assert.equal((await v.commands.run('cat /data/d/ns.txt /data/user-ns.txt')).stdout, 'from-ns\nuser-ns\n');
    assert.equal(
      (await v.commands.run('stat -c %u /data/d/ns.txt /data/user-ns.txt')).stdout,
      `0\n${uid}\n`,
      'the VM sees the owners the namespace capsule wrote',
    );
    assert.equal((await v.commands.run('id -u')).stdout.trim(), String(uid), 'the same default user id in both');
    await v.commands.run('echo user-vm >> /data/user-ns.txt && echo vm > /data/vm.txt');
    await v.commands.run('echo rootvm > /data/d/root-vm.txt', root);
    const mounts = (await v.commands.run('grep " /data " /proc/mounts', root)).stdout;
    assert.match(mounts, /^\/dev\/vd[b-z] \/data ext4 .*nosuid.*nodev/m, mounts);
    assert.match(mounts, /[ ,]sync[ ,]/, 'mounted sync: a destroy (the VM killed) loses nothing written');

    // Every second user is refused while the VM holds the volume.
    const ns2 = await create('namespace', 'qvol', '/data');
    assert.equal(ns2.status, 409, JSON.stringify(ns2.body));
    assert.match(ns2.body.error?.message ?? '', /held by that capsule alone|two kernels/);
    const vm2 = await create('qemu', 'qvol', '/other');
    assert.equal(vm2.status, 409, JSON.stringify(vm2.body));
    await assert.rejects(vol.readFile('/vm.txt', { apiUrl: sys.url }), /alone|409/);
    const got = (await (await api('GET', `/v1/capsules/${vm1.body.id}`)).json()) as { volume_mounts: unknown };
    assert.deepEqual(got.volume_mounts, [{ name: 'qvol', path: '/data' }]);
    // A VM with volumes is not forked (its memory has them mounted).
    const fork = await api('POST', `/v1/capsules/${vm1.body.id}/fork`, { count: 1 });
    assert.equal(fork.status, 409, await fork.text());
    await v.kill();

    // Back in a namespace capsule: the VM's files with the ids the VM gave them.
    const ns3 = await create('namespace', 'qvol', '/srv/q');
    assert.equal(ns3.status, 201, JSON.stringify(ns3.body));
    const c = await connect(ns3.body.id as string);
    assert.equal((await c.commands.run('cat /srv/q/vm.txt /srv/q/user-ns.txt')).stdout, 'vm\nuser-ns\nuser-vm\n');
    assert.equal(
      (await c.commands.run('stat -c %u /srv/q/vm.txt /srv/q/d/root-vm.txt /srv/q/d/ns.txt')).stdout,
      `${uid}\n0\n0\n`,
    );
    await c.commands.run('echo again >> /srv/q/vm.txt');
    assert.equal(await vol.readFile('/vm.txt', { apiUrl: sys.url }), 'vm\nagain\n');
    await c.kill();
  });

  it('hostile: root in the VM wrecks the ext4 it holds; the host refuses the image afterwards, the neighbour runs', {
    timeout: 900_000,
  }, async () => {
    // The smallest volume (16 MiB), so the guest can overwrite all of it, backup superblocks included.
    const small = await fetch(`${sys.url}/volumes`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': sys.adminKey },
      body: JSON.stringify({ name: 'qvol-wreck', sizeMB: 16 }),
    });
    assert.equal(small.status, 201, await small.clone().text());
    const neighbour = await Sandbox.create('minimal', opts());
    made.push(neighbour.sandboxId);
    const vm = await create('qemu', 'qvol-wreck', '/data');
    assert.equal(vm.status, 201, JSON.stringify(vm.body));
    const v = await connect(vm.body.id as string);
    const dev = (await v.commands.run('awk \'$2=="/data"{print $1}\' /proc/mounts', root)).stdout.trim();
    assert.match(dev, /^\/dev\/vd[b-z]$/);
    // Unmount it in the guest and overwrite the whole disk with garbage (dd ends at the disk's end).
    await v.commands.run(
      `umount /data; umount /run/wrenn/volumes/*; dd if=/dev/urandom of=${dev} bs=1M conv=fsync 2>/dev/null; true`,
      root,
    );
    await v.kill();
    const after = await create('namespace', 'qvol-wreck', '/data');
    assert.equal(after.status, 409, JSON.stringify(after.body));
    assert.match(after.body.error?.message ?? '', /file system check/);
    assert.equal((await neighbour.commands.run('echo alive')).stdout, 'alive\n');
    await neighbour.kill();
  });
});
