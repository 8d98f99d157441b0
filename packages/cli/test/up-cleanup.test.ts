// What a stopped `wrenn up` leaves on the host: its capsules and what they need (namespaces,
// firewall chains, cgroups) while any are left, for the next start to take them back; nothing at
// all once none are.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { agentCgroupParent, removeCgroupParent, SHARED_IMAGES, slotNetwork } from '@wrenn/control-plane/testing';
import { type RunningUp, startUp } from '../src/up.js';

const SLOT = 8;
const net = slotNetwork(SLOT);
const chainPrefix = net.names?.chainPrefix ?? '';
const netnsPrefix = net.names?.netnsPrefix ?? '';

const chains = () =>
  execFileSync('iptables-save', { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.includes(chainPrefix)).length;
const namespaces = () => readdirSync('/run/netns').filter((n) => n.startsWith(netnsPrefix)).length;
const cgroupParent = () => existsSync(join('/sys/fs/cgroup/memory', agentCgroupParent(SLOT)));

async function api(up: RunningUp, method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${up.url}${path}`, {
    method,
    headers: { 'x-api-key': up.adminKey, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`);
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

test('a stopped wrenn up keeps what its capsules need, and leaves nothing once none is left', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'wrenn-up-cleanup-'));
  const start = () =>
    startUp({
      dataDir,
      listen: { host: '127.0.0.1', port: 0 },
      domain: 'localhost',
      network: net,
      cgroupParent: agentCgroupParent(SLOT),
      imagesDir: SHARED_IMAGES,
      logLevel: 'silent',
    });
  let up: RunningUp | undefined;
  try {
    up = await start();
    const capsule = await api(up, 'POST', '/v1/capsules', { template: 'minimal', timeout_sec: 600 });
    const id = String(capsule.id);
    await up.close();
    up = undefined;
    assert.ok(namespaces() >= 1, "the capsule's namespace stays");
    assert.ok(chains() > 0, 'the firewall chains stay for it');
    assert.ok(cgroupParent(), 'so does its cgroup parent');

    // The next start takes the capsule back; once it is destroyed, a stop leaves nothing.
    up = await start();
    const back = await api(up, 'GET', `/v1/capsules/${id}`);
    assert.equal(back.state, 'running');
    await api(up, 'DELETE', `/v1/capsules/${id}`);
    await up.close();
    up = undefined;
    assert.equal(namespaces(), 0, 'no network namespace is left');
    assert.equal(chains(), 0, 'no iptables chain or rule is left');
    assert.equal(cgroupParent(), false, 'no cgroup parent is left');
  } finally {
    await up?.close().catch(() => undefined);
    // Whatever a failed run left: the next start's agent clears it, then everything is removed.
    const sweep = await start().catch(() => undefined);
    if (sweep) {
      for (const c of (await api(sweep, 'GET', '/v1/capsules').catch(() => ({ capsules: [] }))).capsules as Array<{
        id: string;
      }>) {
        await api(sweep, 'DELETE', `/v1/capsules/${c.id}`).catch(() => undefined);
      }
      await sweep.close();
      await sweep.layers.networkManager.removeAll().catch(() => undefined);
    }
    removeCgroupParent(SLOT);
    rmSync(dataDir, { recursive: true, force: true });
  }
});
