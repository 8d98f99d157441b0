// Fixtures shared by the filesystem and /files suites: temp dirs, a real throwaway Linux user, and
// Connect error assertions. Everything created is removed by the caller's t.after.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Code, ConnectError } from '@connectrpc/connect';

export interface After {
  after(fn: () => unknown): void;
}

export function tempDir(t: After, prefix = 'wrenn-fs-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** Creates a real user (useradd) with a home under a temp dir; userdel'd after the test. */
export function createTestUser(t: After): TestUser {
  const base = tempDir(t, 'wrenn-home-');
  const name = `wrt${process.pid % 100000}${Math.floor(Math.random() * 1000)}`;
  const home = join(base, name);
  execFileSync('useradd', ['-m', '-d', home, '-s', '/bin/sh', '-U', name]);
  t.after(() => {
    try {
      execFileSync('userdel', [name], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  });
  const uid = Number(execFileSync('id', ['-u', name]).toString().trim());
  const gid = Number(execFileSync('id', ['-g', name]).toString().trim());
  return { name, uid, gid, home };
}

export async function expectCode(promise: Promise<unknown>, code: Code, messagePart?: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof ConnectError, `expected a ConnectError, got ${String(err)}`);
    assert.equal(err.code, code, `expected ${Code[code]}, got ${Code[err.code]}: ${err.message}`);
    if (messagePart) assert.match(err.message, new RegExp(messagePart.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    return true;
  });
}

/** Polls until check() passes or the deadline passes (then the last assertion error is thrown). */
export async function eventually(check: () => void | Promise<void>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}
