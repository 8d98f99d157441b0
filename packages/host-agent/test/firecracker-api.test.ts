// The Firecracker API client and its call sequences, against a unix-socket HTTP server in the
// test that records each request and checks it against the API's schema (api-schema.ts, written
// from Firecracker's published OpenAPI specification). Firecracker itself needs KVM, which this
// machine cannot run, so the VMM is not started here: the requests' shapes and order are what is proven.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  configureAndStart,
  DEFAULT_TX_RATE_LIMITER,
  FirecrackerApiError,
  FirecrackerClient,
  pauseToSnapshot,
  restoreWithUffd,
  validateRequest,
} from '../src/runtimes/firecracker/index.js';

interface Recorded {
  method: string;
  path: string;
  body: unknown;
  problems: string[];
}

async function apiServer(
  dir: string,
  failOn?: string,
): Promise<{ socket: string; calls: Recorded[]; close(): Promise<void> }> {
  const socket = join(dir, 'firecracker.sock');
  const calls: Recorded[] = [];
  const server = http.createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c));
    req.on('end', () => {
      const method = req.method ?? '';
      const path = req.url ?? '';
      const body = text ? (JSON.parse(text) as unknown) : undefined;
      const problems = validateRequest(method, path, body);
      calls.push({ method, path, body, problems });
      const reply = (status: number, json?: unknown) => {
        res.writeHead(status, json ? { 'content-type': 'application/json' } : {});
        res.end(json ? JSON.stringify(json) : undefined);
      };
      if (problems.length) return reply(400, { fault_message: problems.join('; ') });
      if (failOn && path === failOn) return reply(400, { fault_message: 'Invalid request: the test refused it' });
      if (path === '/version') return reply(200, { firecracker_version: '1.10.1' });
      if (path === '/')
        return reply(200, {
          id: 'anonymous-instance',
          state: 'Running',
          vmm_version: '1.10.1',
          app_name: 'Firecracker',
        });
      reply(204);
    });
  });
  await new Promise<void>((r) => server.listen(socket, r));
  return { socket, calls, close: () => new Promise((r) => server.close(() => r())) };
}

test('firecracker client: create, pause with Diff, restore with UFFD (request shapes and order checked against the API schema)', async (t) => {
  console.log(
    '# Firecracker itself needs KVM (not usable on this machine): the VMM is not run; its API calls are checked',
  );
  const dir = await mkdtemp(join(tmpdir(), 'wrenn-fc-api-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const srv = await apiServer(dir);
  t.after(() => srv.close());
  const fc = new FirecrackerClient(srv.socket);

  const metadata = { WRENN_SANDBOX_ID: 'cl-abc123', WRENN_TEMPLATE_ID: 'minimal' };
  const version = await configureAndStart(fc, {
    kernel: '/var/lib/wrenn/kernels/6.1.0-56-amd64/vmlinux',
    initrd: '/var/lib/wrenn/kernels/6.1.0-56-amd64/initrd.img',
    bootArgs: 'console=ttyS0 root=/dev/vda rw',
    rootfs: '/var/lib/wrenn/sandboxes/cl-abc123/rootfs.ext4',
    tapName: 'tap0',
    guestMac: '02:57:00:00:00:01',
    vcpus: 2,
    memoryMb: 512,
    metadata,
  });
  assert.equal(version, '1.10.1');
  const first = await pauseToSnapshot(fc, {
    snapshotPath: `${dir}/vmstate`,
    memFilePath: `${dir}/memfile.a`,
    firstGeneration: true,
  });
  await fc.resume();
  const second = await pauseToSnapshot(fc, {
    snapshotPath: `${dir}/vmstate`,
    memFilePath: `${dir}/memfile.b`,
    firstGeneration: false,
  });
  assert.deepEqual([first, second], ['Full', 'Diff']);
  await restoreWithUffd(fc, { snapshotPath: `${dir}/vmstate`, uffdSocket: `${dir}/uffd.sock` });

  for (const c of srv.calls) assert.deepEqual(c.problems, [], `${c.method} ${c.path} matches the schema`);
  assert.deepEqual(
    srv.calls.map((c) => `${c.method} ${c.path}`),
    [
      'GET /version',
      'PUT /boot-source',
      'PUT /drives/rootfs',
      'PUT /network-interfaces/eth0',
      'PUT /machine-config',
      'PUT /mmds/config',
      'PUT /mmds',
      'PUT /actions',
      'PATCH /vm',
      'PUT /snapshot/create',
      'PATCH /vm',
      'PATCH /vm',
      'PUT /snapshot/create',
      'PUT /snapshot/load',
    ],
  );
  const body = (i: number) => srv.calls[i]?.body as Record<string, unknown>;
  assert.deepEqual(body(3).tx_rate_limiter, {
    bandwidth: { size: 200_000_000, refill_time: 1000, one_time_burst: 100_000_000 },
  });
  assert.deepEqual(DEFAULT_TX_RATE_LIMITER.bandwidth, {
    size: 200_000_000,
    refill_time: 1000,
    one_time_burst: 100_000_000,
  });
  assert.equal(body(4).track_dirty_pages, true, 'dirty pages tracked so re-pauses can be Diff snapshots');
  assert.deepEqual(body(5), { version: 'V2', network_interfaces: ['eth0'], ipv4_address: '169.254.169.254' });
  assert.deepEqual(body(6), metadata);
  assert.deepEqual(body(7), { action_type: 'InstanceStart' });
  assert.deepEqual(body(8), { state: 'Paused' });
  assert.equal(body(9).snapshot_type, 'Full');
  assert.deepEqual(body(11), { state: 'Paused' });
  assert.equal(body(12).snapshot_type, 'Diff');
  assert.deepEqual(body(13), {
    snapshot_path: `${dir}/vmstate`,
    mem_backend: { backend_type: 'Uffd', backend_path: `${dir}/uffd.sock` },
    track_dirty_pages: true,
    resume_vm: true,
  });
});

test('firecracker client: API errors carry fault_message; a missing socket says so', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wrenn-fc-api-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const srv = await apiServer(dir, '/actions');
  t.after(() => srv.close());
  const fc = new FirecrackerClient(srv.socket);
  await assert.rejects(
    fc.start(),
    (e: unknown) => e instanceof FirecrackerApiError && e.status === 400 && /the test refused it/.test(e.message),
  );
  // The schema check itself refuses what Firecracker would refuse (unknown fields, bad enums).
  await assert.rejects(
    fc.request('PUT', '/machine-config', { vcpu_count: 0, mem_size_mib: 128, bogus: 1 }),
    /below 1.*unknown field bogus/,
  );
  await assert.rejects(new FirecrackerClient(join(dir, 'nope.sock')).version(), /no Firecracker API at .*nope\.sock/);
  assert.deepEqual(
    validateRequest('PUT', '/snapshot/create', {
      snapshot_path: 'a',
      mem_file_path: 'b',
      snapshot_type: 'Incremental',
    }),
    ['PUT /snapshot/create.snapshot_type: "Incremental" is not one of Full, Diff'],
  );
});
