// The dashboard's static route: files with cache headers, the SPA fallback for pages, and no
// shadowing of the API, docs, proxy or health paths.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Fastify from 'fastify';
import { registerDashboard } from '../src/api/dashboard.js';

async function serve(t: { after(fn: () => unknown): void }, dir: string) {
  const app = Fastify();
  app.get('/v1/capsules', async () => ({ capsules: [] }));
  app.get('/health', async () => ({ status: 'ok' }));
  registerDashboard(app, { dir });
  await app.ready();
  t.after(() => app.close());
  return app;
}

test('dashboard files, SPA fallback and reserved paths', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wrenn-dash-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'assets'));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>Wrenn</title>');
  writeFileSync(join(dir, 'assets', 'index-abc123.js'), 'console.log(1)');
  writeFileSync(join(dir, 'favicon.svg'), '<svg/>');
  writeFileSync(join(tmpdir(), 'wrenn-dash-outside.txt'), 'secret');
  t.after(() => rmSync(join(tmpdir(), 'wrenn-dash-outside.txt'), { force: true }));
  const app = await serve(t, dir);
  const html = { accept: 'text/html,application/xhtml+xml' };

  const root = await app.inject({ url: '/' });
  assert.equal(root.statusCode, 200);
  assert.match(root.headers['content-type'] as string, /^text\/html/);
  assert.equal(root.headers['cache-control'], 'no-cache');
  assert.match(root.body, /<title>Wrenn/);

  const asset = await app.inject({ url: '/assets/index-abc123.js' });
  assert.equal(asset.statusCode, 200);
  assert.match(asset.headers['content-type'] as string, /^text\/javascript/);
  assert.match(asset.headers['cache-control'] as string, /immutable/);
  assert.equal(asset.body, 'console.log(1)');
  assert.equal((await app.inject({ url: '/favicon.svg' })).headers['content-type'], 'image/svg+xml');

  // Deep links of the app get index.html; other unknown files stay 404.
  const deep = await app.inject({ url: '/capsules/cl-abc', headers: html });
  assert.equal(deep.statusCode, 200);
  assert.match(deep.body, /<title>Wrenn/);
  assert.equal(
    (await app.inject({ url: '/capsules/cl-abc', headers: { accept: 'application/json' } })).statusCode,
    404,
  );
  assert.equal((await app.inject({ url: '/assets/missing.js', headers: html })).statusCode, 404);

  // API, docs, proxy and E2B paths are never answered with the app.
  for (const p of [
    '/v1/nope',
    '/v1',
    '/sandboxes',
    '/sandboxes/x',
    '/v2/sandboxes',
    '/templates',
    '/snapshots',
    '/docs/x',
    '/proxy/cl-1/80/',
    '/metrics',
    '/test',
    '/openapi.yaml',
  ]) {
    const r = await app.inject({ url: p, headers: html });
    assert.equal(r.statusCode, 404, `${p} must not be served by the dashboard`);
    assert.doesNotMatch(r.body, /<title>Wrenn/, p);
  }
  assert.deepEqual((await app.inject({ url: '/v1/capsules', headers: html })).json(), { capsules: [] });
  assert.deepEqual((await app.inject({ url: '/health', headers: html })).json(), { status: 'ok' });

  // Nothing outside the directory.
  for (const p of [
    '/../wrenn-dash-outside.txt',
    '/%2e%2e/wrenn-dash-outside.txt',
    '/assets/..%2f..%2fwrenn-dash-outside.txt',
  ]) {
    const r = await app.inject({ url: p });
    assert.notEqual(r.body, 'secret', p);
  }
});

test('a control plane without a dashboard build says how to build it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wrenn-dash-empty-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const app = await serve(t, dir);
  const r = await app.inject({ url: '/', headers: { accept: 'text/html' } });
  assert.equal(r.statusCode, 503);
  assert.match(r.body, /npm run build/);
});
