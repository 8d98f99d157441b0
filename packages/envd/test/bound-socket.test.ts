// envd's listening socket bound by @wrenn/native (src/net/bound-socket.ts) behind listenDual: it
// serves like node's own, refuses a taken port with node's error code, and leaves host names to node.
import assert from 'node:assert/strict';
import { closeSync } from 'node:fs';
import net from 'node:net';
import { test } from 'node:test';
import { boundSocket, takeEarlySocket } from '../src/net/bound-socket.js';
import { listenDual } from '../src/net/dual-listener.js';

test('listenDual on a numeric address serves from the socket the addon bound', async (t) => {
  for (const host of ['127.0.0.1', '::1']) {
    const l = await listenDual((_req, res) => res.end('hi'), { port: 0, host });
    t.after(() => l.close());
    assert.ok(l.port > 0);
    const url = host.includes(':') ? `http://[${host}]:${l.port}/` : `http://${host}:${l.port}/`;
    assert.equal(await (await fetch(url)).text(), 'hi');
  }
});

test('the addon binds numeric addresses only; a name is left to node', (t) => {
  const fd = boundSocket('127.0.0.1', 0);
  assert.equal(typeof fd, 'number');
  // Hand it to a server so it is closed with it.
  const s = net.createServer().listen({ fd: fd as number });
  t.after(() => s.close());
  assert.equal(boundSocket('localhost', 0), null);
  assert.equal(boundSocket('not an address', 0), null);
  assert.equal(boundSocket('x'.repeat(200), 0), null);
});

test('a taken port fails with EADDRINUSE, as node reports it', async (t) => {
  const taken = net.createServer();
  await new Promise<void>((resolve) => taken.listen({ port: 0, host: '127.0.0.1' }, resolve));
  t.after(() => taken.close());
  const port = (taken.address() as net.AddressInfo).port;
  assert.throws(() => boundSocket('127.0.0.1', port), { code: 'EADDRINUSE' });
  await assert.rejects(
    listenDual(() => undefined, { port, host: '127.0.0.1' }),
    { code: 'EADDRINUSE' },
  );
});

test("the socket start.cjs bound early is taken once by envd's listener, for its own host and port only; another one is closed", async (t) => {
  const slot = globalThis as unknown as Record<symbol, unknown>;
  const EARLY = Symbol.for('wrenn.envd.boundSocket');
  t.after(() => delete slot[EARLY]);
  const listening = (port: number) =>
    new Promise<boolean>((resolve) => {
      const c = net.connect({ port, host: '127.0.0.1' });
      c.once('connect', () => (c.destroy(), resolve(true)));
      c.once('error', () => resolve(false));
    });
  // For this host and port: that very fd, and only the first time.
  const fd = boundSocket('127.0.0.1', 0) as number;
  slot[EARLY] = { fd, host: '127.0.0.1', port: 0 };
  assert.equal(takeEarlySocket('127.0.0.1', 0), fd);
  assert.equal(slot[EARLY], undefined);
  assert.equal(takeEarlySocket('127.0.0.1', 0), null);
  const s = net.createServer().listen({ fd });
  t.after(() => s.close());
  await new Promise((r) => s.once('listening', r));
  const port = (s.address() as net.AddressInfo).port;
  // For another port: closed, so nothing listens there any more.
  const other = boundSocket('127.0.0.1', 0) as number;
  const otherServer = net.createServer().listen({ fd: other });
  await new Promise((r) => otherServer.once('listening', r));
  const otherPort = (otherServer.address() as net.AddressInfo).port;
  await new Promise((r) => otherServer.close(r)); // bound again below as the stray early socket
  const stray = boundSocket('127.0.0.1', otherPort) as number;
  assert.equal(await listening(otherPort), true, 'the control: the stray socket listens');
  slot[EARLY] = { fd: stray, host: '127.0.0.1', port: otherPort };
  assert.equal(takeEarlySocket('127.0.0.1', 0), null);
  assert.equal(await listening(otherPort), false, 'the stray early socket was closed');
  // Nonsense in the slot is dropped, not used.
  slot[EARLY] = { fd: 'x', host: '127.0.0.1', port: 0 };
  assert.equal(takeEarlySocket('127.0.0.1', 0), null);
  assert.equal(slot[EARLY], undefined);
  // The port forwards' sockets (boundSocket) never take it.
  const kept = { fd: boundSocket('127.0.0.1', 0) as number, host: '127.0.0.1', port: 0 };
  slot[EARLY] = kept;
  const forward = boundSocket('127.0.0.1', 0) as number;
  assert.notEqual(forward, kept.fd);
  assert.equal(slot[EARLY], kept);
  closeSync(forward);
  assert.equal(takeEarlySocket('127.0.0.1', 0), kept.fd);
  closeSync(kept.fd);
  assert.equal(await listening(port), true, 'the first server still serves');
});
