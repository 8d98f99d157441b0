// envd's listening socket bound by @wrenn/native (src/net/bound-socket.ts) behind listenDual: it
// serves like node's own, refuses a taken port with node's error code, and leaves host names to node.
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { boundSocket } from '../src/net/bound-socket.js';
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
