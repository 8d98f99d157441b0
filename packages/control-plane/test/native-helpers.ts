// Helpers for the native API tests: a control plane on a temp dir (SQLite) or a throwaway
// PostgreSQL database, teams with keys, and small HTTP/WebSocket clients.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, type TestContext } from 'node:test';
import WebSocket from 'ws';
import type { EdgeLimits } from '../src/api/edge.js';
import { createApiKey } from '../src/auth/api-keys.js';
import type { SqlDialect } from '../src/db/index.js';
import { createTeam } from '../src/db/repositories/teams.js';
import { type RunningControlPlane, startControlPlane } from '../src/server.js';
import { startTestPostgres, type TestPostgres } from './pg.js';

let pgServer: Promise<TestPostgres> | undefined;
// Registered while the test file is loading, so it runs once after all of the file's tests.
after(async () => {
  if (pgServer) await (await pgServer).stop();
});

/** A new empty PostgreSQL database URL on this file's throwaway server (started on first use). */
export async function postgresDatabase(): Promise<string> {
  pgServer ??= startTestPostgres();
  return (await pgServer).createDatabase();
}

export function tempDir(t: TestContext | { after(fn: () => unknown): void }, prefix = 'wrenn-native-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export async function databaseUrlFor(dialect: SqlDialect): Promise<string | undefined> {
  return dialect === 'postgres' ? postgresDatabase() : undefined;
}

/** A control plane with no hosts, on loopback, closed after the test. */
export async function startBareControlPlane(
  t: TestContext,
  dialect: SqlDialect,
  edge?: Partial<EdgeLimits>,
): Promise<RunningControlPlane> {
  const dataDir = tempDir(t);
  const databaseUrl = await databaseUrlFor(dialect);
  const cp = await startControlPlane({
    listen: { host: '127.0.0.1', port: 0 },
    dataDir,
    domain: 'wrenn.localhost',
    publicUrl: 'http://127.0.0.1',
    logLevel: 'silent',
    ...(databaseUrl ? { databaseUrl } : {}),
    ...(edge ? { edge } : {}),
  });
  t.after(() => cp.close());
  return cp;
}

export async function newTeamKey(cp: RunningControlPlane, name = 'team'): Promise<{ teamId: string; key: string }> {
  const team = await createTeam(cp.ctx.database.db, { name });
  const { key } = await createApiKey(cp.ctx.database.db, { teamId: team.id, name: `${name} key` });
  return { teamId: team.id, key };
}

// biome-ignore lint/suspicious/noExplicitAny: response bodies of many shapes, checked by the assertions
export interface Res<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

/** A JSON client for one base URL and key. */
export function client(base: string, key?: string) {
  // biome-ignore lint/suspicious/noExplicitAny: response bodies of many shapes, checked by the assertions
  return async function call<T = any>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<Res<T>> {
    const h: Record<string, string> = { ...headers };
    if (key) h['x-api-key'] = key;
    let payload: string | Buffer | undefined;
    if (Buffer.isBuffer(body)) payload = body;
    else if (typeof body === 'string') {
      payload = body;
      h['content-type'] ??= 'application/json';
    } else if (body !== undefined) {
      payload = JSON.stringify(body);
      h['content-type'] = 'application/json';
    }
    const res = await fetch(base + path, { method, headers: h, ...(payload !== undefined ? { body: payload } : {}) });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // not JSON
    }
    return { status: res.status, headers: res.headers, body: parsed as T, text };
  };
}

/** Opens a WebSocket; resolves once open, or rejects with the HTTP status the server refused with. */
/** What POST /v1/capsules/:id/exec answers. */
export interface ExecResult {
  stdout: string;
  stderr: string;
  exit_code: number;
}

/** Runs `cmd` (as `user`, else the capsule's default) through the native API; anything but 200 fails the test. */
export async function execOk(
  call: ReturnType<typeof client>,
  id: string,
  cmd: string,
  user?: string,
): Promise<ExecResult> {
  const r = await call('POST', `/v1/capsules/${id}/exec`, { cmd, ...(user ? { user } : {}) });
  if (r.status !== 200) throw new Error(`exec in ${id} answered ${r.status}: ${r.text}`);
  return r.body as ExecResult;
}

export function openWs(url: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () =>
        reject(Object.assign(new Error(`refused with ${res.statusCode}: ${body}`), { status: res.statusCode, body })),
      );
    });
    ws.once('error', reject);
  });
}
