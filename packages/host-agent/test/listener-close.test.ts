// The agent's listener at shutdown (envd's dual-listener.ts, which `wrenn agent` serves its
// Connect service on): close() ends every connection it accepted, whatever state it is in, and
// does not wait for peers to go away. The case that hung CI: a control plane's connection accepted
// just before close() with its TLS handshake still under way; it finished its handshake afterwards,
// was handed to the h2 server and served the control plane's polls for as long as it kept them up,
// so close() never resolved.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import tls from 'node:tls';
import { type DualListener, listenDual } from '@wrenn/envd/host';
import { loadAgentTls } from '../src/auth/agent-tls.js';

const dir = mkdtempSync(join(tmpdir(), 'wrenn-listener-close-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const material = loadAgentTls('self-signed', dir, '127.0.0.1');

const serve = (withTls: boolean) =>
  listenDual(
    (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
    },
    { host: '127.0.0.1', port: 0, ...(withTls ? { tls: { cert: material.cert, key: material.key } } : {}) },
  );

/** Resolves once the listener holds `n` connections (it accepted them), failing after 10 s. */
async function accepted(l: DualListener, n: number): Promise<void> {
  for (let i = 0; l.connections < n; i++) {
    if (i > 1000) assert.fail(`the listener accepted ${l.connections} of ${n} connections`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** close(), failing with what it still waits for when it has not resolved within 20 s (it hangs otherwise). */
async function closes(l: DualListener, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const done = await Promise.race([
    l.close().then(() => true),
    new Promise<false>((r) => {
      timer = setTimeout(() => r(false), 20_000);
    }),
  ]);
  clearTimeout(timer);
  if (!done) assert.fail(`close() still waiting after 20 s on ${l.connections} connection(s): ${what}`);
}

/** One h2 request on `session`: its status, or the error code that ended it. */
const ask = (session: http2.ClientHttp2Session) =>
  new Promise<string>((resolve) => {
    const req = session.request({ ':path': '/health' });
    req.on('response', (h) => resolve(String(h[':status'])));
    req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    req.on('close', () => resolve('closed'));
    req.resume();
    req.end();
  });

test('close() ends a TLS connection whose handshake was under way, rather than serving it once the handshake finishes', async () => {
  const l = await serve(true);
  const raw = net.connect(l.port, '127.0.0.1');
  await new Promise((r) => raw.once('connect', r));
  await accepted(l, 1);
  const closing = closes(l, 'a connection accepted before close(), its TLS handshake finished after');
  // The handshake goes on over the connection accepted before close(), as a control plane's would.
  const secure = tls.connect({ socket: raw, rejectUnauthorized: false, ALPNProtocols: ['h2'] });
  const handshake = await new Promise<string>((resolve) => {
    secure.once('secureConnect', () => resolve('completed'));
    secure.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    secure.once('close', () => resolve('closed'));
  });
  let answer = 'none';
  let session: http2.ClientHttp2Session | undefined;
  if (handshake === 'completed') {
    session = http2.connect(`https://127.0.0.1:${l.port}`, { createConnection: () => secure });
    session.on('error', () => undefined);
    answer = await ask(session);
  }
  // The peer keeps its session up (a control plane polls every 2 s): close() must not wait for it.
  try {
    await closing;
  } finally {
    session?.destroy();
    secure.destroy();
  }
  assert.notEqual(answer, '200', 'a request on that connection was answered after close()');
});

test('close() ends kept-alive h2 and HTTP/1.1 connections over TLS and h2c without waiting for the peers', async () => {
  for (const withTls of [true, false]) {
    const l = await serve(withTls);
    const scheme = withTls ? 'https' : 'http';
    const session = http2.connect(`${scheme}://127.0.0.1:${l.port}`, { rejectUnauthorized: false });
    session.on('error', () => undefined);
    assert.equal(await ask(session), '200');
    const keepAlive = new https.Agent({ keepAlive: true, rejectUnauthorized: false });
    if (withTls) {
      const status = await new Promise<number | undefined>((resolve, reject) => {
        https
          .get(`https://127.0.0.1:${l.port}/health`, { agent: keepAlive }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode));
          })
          .on('error', reject);
      });
      assert.equal(status, 200);
    }
    await accepted(l, withTls ? 2 : 1);
    const sessionClosed = new Promise<void>((r) => session.once('close', () => r()));
    await closes(l, `kept-alive connections (${scheme})`);
    await sessionClosed;
    assert.equal(l.connections, 0);
    // Nothing is accepted any more.
    const refused = await new Promise<string>((resolve) => {
      const s = net.connect(l.port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve('connected');
      });
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });
    assert.equal(refused, 'ECONNREFUSED');
    keepAlive.destroy();
  }
});
