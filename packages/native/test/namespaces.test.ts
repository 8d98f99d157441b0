// setHostnameIn against a real UTS namespace: a child started in its own namespace (unshare -u)
// gets the new name; the host keeps its own.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { test } from 'node:test';
import { native } from '../src/index.js';

test('setHostnameIn renames the UTS namespace of a process, not the host', async (t) => {
  const child = spawn('unshare', ['-u', 'sleep', '30'], { stdio: 'ignore' });
  t.after(() => child.kill('SIGKILL'));
  // unshare execs sleep in the same process once the namespace exists.
  const pid = child.pid ?? 0;
  for (let i = 0; i < 200 && !readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('sleep'); i++)
    await new Promise((r) => setTimeout(r, 5));
  const before = hostname();
  native().setHostnameIn(pid, 'wrenn-uts-test');
  assert.equal(
    execFileSync('nsenter', ['-t', String(pid), '-u', 'hostname'])
      .toString()
      .trim(),
    'wrenn-uts-test',
  );
  assert.equal(hostname(), before);
});

test('setHostnameIn says what was wrong', () => {
  assert.throws(() => native().setHostnameIn(999_999_999, 'x'), /open \/proc\/999999999\/ns\/uts/);
  assert.throws(() => native().setHostnameIn(process.pid, ''), /1-64 bytes/);
});
