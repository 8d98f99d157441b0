// host-tuning.ts: which settings the environment asks for, and that applying them only raises,
// skips what the kernel lacks and says what it changed (on a scratch copy of /proc/sys's layout).

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { applyHostSettings, hostSettings, sysctlPath } from '../src/host-tuning.js';

test('settings from the environment', () => {
  const keys = (env: NodeJS.ProcessEnv) => Object.fromEntries(hostSettings(env).map((s) => [s.key, s.value]));
  assert.equal(keys({})['net.ipv4.tcp_child_ehash_entries'], 1024);
  assert.equal(keys({})['net.ipv4.neigh.default.gc_thresh3'], 16384);
  assert.equal(keys({ WRENN_NETNS_HASH_ENTRIES: '0' })['net.ipv4.tcp_child_ehash_entries'], undefined);
  assert.equal(keys({ WRENN_NETNS_HASH_ENTRIES: '4096' })['net.ipv4.udp_child_hash_entries'], 4096);
  assert.deepEqual(hostSettings({ WRENN_HOST_TUNING: '0' }), []);
  assert.throws(() => hostSettings({ WRENN_NEIGH_MAX: 'lots' }), /WRENN_NEIGH_MAX="lots" must be an integer/);
  assert.throws(() => sysctlPath('../etc/passwd'), /not a sysctl name/);
});

test('applies only raises and skips what the kernel does not have', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wrenn-sysctl-'));
  try {
    mkdirSync(join(dir, 'net/ipv4'), { recursive: true });
    mkdirSync(join(dir, 'kernel'), { recursive: true });
    writeFileSync(join(dir, 'net/ipv4/tcp_child_ehash_entries'), '0\n');
    writeFileSync(join(dir, 'kernel/pid_max'), '8388608\n');
    const logged: string[] = [];
    const log = {
      info: (o: object) => logged.push(JSON.stringify(o)),
      warn: (o: object) => logged.push(JSON.stringify(o)),
    };
    const r = await applyHostSettings(
      [
        { key: 'net.ipv4.tcp_child_ehash_entries', value: 1024 },
        { key: 'kernel.pid_max', value: 4194304 },
        { key: 'net.ipv4.udp_child_hash_entries', value: 1024 },
      ],
      log,
      dir,
    );
    assert.deepEqual(r, [
      { key: 'net.ipv4.tcp_child_ehash_entries', before: 0, after: 1024 },
      { key: 'kernel.pid_max', before: 8388608, skipped: 'already' },
      { key: 'net.ipv4.udp_child_hash_entries', skipped: 'absent' },
    ]);
    assert.equal(readFileSync(join(dir, 'kernel/pid_max'), 'utf8'), '8388608\n');
    assert.equal(logged.length, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
