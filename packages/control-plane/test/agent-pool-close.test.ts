// The control plane's connections to host agents (agents/pool.ts) end when it drops a host's
// client: a host forgotten after a failed call, a host whose address, secret or certificate changed,
// and every host when the control plane closes. Before, a dropped client's HTTP/2 session stayed
// open, pinging the agent, until its 15-minute idle timeout. The agent here is a bare h2c server
// that answers every call with 404 (a call still opens the session) and counts open sessions.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { AgentPool } from '../src/agents/pool.js';

let server: http2.Http2Server;
let base = '';
const open = new Set<http2.ServerHttp2Session>();

before(async () => {
  server = http2.createServer((_req, res) => {
    res.writeHead(404);
    res.end();
  });
  server.on('session', (s) => {
    open.add(s);
    s.once('close', () => open.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  for (const s of open) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

/** Waits until the server holds `n` sessions (20 s at most: it never gets there otherwise). */
async function sessions(n: number, why: string): Promise<void> {
  for (let i = 0; open.size !== n; i++) {
    if (i > 2000) assert.fail(`${why}: ${open.size} sessions open, expected ${n}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const call = (pool: AgentPool, host: { id: string; address: string; agentSecret: string }) =>
  pool
    .client(host)
    .getHostInfo({})
    .catch(() => undefined);

test("forget() closes the host's connection; a new client opens a new one", async () => {
  const pool = new AgentPool();
  const host = { id: 'host-a', address: base, agentSecret: 's'.repeat(32) };
  await call(pool, host);
  await call(pool, host);
  await sessions(1, 'one session for the host, reused');
  pool.forget(host.id);
  await sessions(0, 'forgotten');
  await call(pool, host);
  await sessions(1, 'a new client');
  pool.close();
  await sessions(0, 'the pool closed');
});

test("a host's client replaced (a new secret) closes the old connection", async () => {
  const pool = new AgentPool();
  await call(pool, { id: 'host-b', address: base, agentSecret: 'a'.repeat(32) });
  await sessions(1, 'the first client');
  await call(pool, { id: 'host-b', address: base, agentSecret: 'b'.repeat(32) });
  await sessions(1, 'the old one closed, the new one open');
  pool.close();
  await sessions(0, 'the pool closed');
});
