// The throwaway PostgreSQL helper other suites rely on: starts, serves, and leaves nothing behind,
// even when its test process is killed.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startTestPostgres } from './pg.js';

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

function postmasterPid(socketDir: string): number {
  return Number(readFileSync(join(socketDir, '..', 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
}

test('serves separate databases on a unix socket only, and stop() removes the server and its files', async (t) => {
  const server = await startTestPostgres();
  t.after(() => server.stop());
  const pid = postmasterPid(server.socketDir);
  const [u1, u2] = [await server.createDatabase(), await server.createDatabase()];
  assert.notEqual(u1, u2);
  const client = new pg.Client({ connectionString: u1 });
  await client.connect();
  const r = await client.query<{ db: string; addr: string | null }>(
    'select current_database() as db, inet_server_addr()::text as addr',
  );
  await client.end();
  assert.equal(`${server.url(r.rows[0]!.db)}`, u1);
  assert.equal(r.rows[0]!.addr, null, 'connected over the unix socket, not TCP');
  await server.stop();
  assert.equal(alive(pid), false, 'postmaster stopped');
  assert.equal(existsSync(join(server.socketDir, '..')), false, 'files removed');
  await server.stop();
});

test('a server left by a SIGKILLed test process is swept by the next start', async (t) => {
  const helper = join(fileURLToPath(import.meta.url), '..', 'pg.js');
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const m = await import(${JSON.stringify(helper)}); const s = await m.startTestPostgres(); console.log(s.socketDir); setInterval(() => {}, 1000);`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  t.after(() => child.kill('SIGKILL'));
  const socketDir = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(out.trim());
    });
    child.once('exit', (code) => reject(new Error(`helper process exited early (${code})`)));
  });
  const orphan = postmasterPid(socketDir);
  assert.ok(alive(orphan));
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  assert.ok(alive(orphan), 'a SIGKILLed owner cannot clean up by itself');

  const next = await startTestPostgres();
  t.after(() => next.stop());
  for (let i = 0; i < 100 && alive(orphan); i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(alive(orphan), false, 'orphaned postmaster killed');
  assert.equal(existsSync(join(socketDir, '..')), false, 'orphaned files removed');
  assert.ok(existsSync(join(next.socketDir, '..')), 'the new server is untouched');
});
