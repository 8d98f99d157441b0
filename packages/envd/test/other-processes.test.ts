// envd's "does anything but init and envd run here" check, on a made-up /proc: pid 1 and envd's
// own pid never count, kernel threads (PF_KTHREAD in stat's flags) and zombies do not either,
// anything else does; an unreadable /proc counts as "yes" (envd then stays awake).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { OtherProcesses } from '../src/other-processes.js';

const KTHREAD = 0x00200000;

function fakeProc(): { dir: string; add(pid: number, comm: string, state: string, flags: number): void } {
  const dir = mkdtempSync(join(tmpdir(), 'wrenn-fake-proc-'));
  for (const name of ['self', 'net', 'sys', 'uptime']) mkdirSync(join(dir, name));
  return {
    dir,
    add(pid, comm, state, flags) {
      mkdirSync(join(dir, String(pid)), { recursive: true });
      // pid (comm) state ppid pgrp session tty tpgid flags ...
      writeFileSync(join(dir, String(pid), 'stat'), `${pid} (${comm}) ${state} 0 0 0 0 -1 ${flags} 0 0 0 0\n`);
    },
  };
}

test('only init and envd: none; a kernel thread or a zombie: still none; a daemon: yes', (t) => {
  const proc = fakeProc();
  t.after(() => rmSync(proc.dir, { recursive: true, force: true }));
  proc.add(1, 'wrenn-init', 'S', 0x400100);
  proc.add(2, 'node', 'S', 0x400000);
  const others = new OtherProcesses(proc.dir, 2);
  assert.equal(others.exist(), false);
  proc.add(40, 'kworker/0:1-events', 'I', 0x4208060 | KTHREAD);
  proc.add(41, 'sh) S 1 (odd name', 'Z', 0x400000); // a zombie, with a command that looks like fields
  assert.equal(others.exist(), false);
  proc.add(57, 'httpd', 'S', 0x400140);
  assert.equal(others.exist(), true);
  rmSync(join(proc.dir, '57'), { recursive: true });
  assert.equal(others.exist(), false);
});

test('a pid that ends between the listing and its stat read is gone; an unreadable /proc counts as yes', (t) => {
  const proc = fakeProc();
  t.after(() => rmSync(proc.dir, { recursive: true, force: true }));
  mkdirSync(join(proc.dir, '99')); // listed, but no stat: it ended meanwhile
  assert.equal(new OtherProcesses(proc.dir, 2).exist(), false);
  assert.equal(new OtherProcesses(join(proc.dir, 'missing'), 2).exist(), true);
});

test('in this test process: its own children count', async () => {
  // On a host /proc lists every process: there are others (this checks the real parsing of stat).
  assert.equal(new OtherProcesses().exist(), true);
});
