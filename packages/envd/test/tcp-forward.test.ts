// One port forward (src/ports/tcp-forward.ts) on loopback: its listening socket is the one the addon
// bound (server.listen({ fd }), as envd's own), close-on-exec, so no process started after it holds
// it (hostile: a command in the capsule must not be able to accept the forward's connections); it
// forwards both ways with half-close on an IPv4 and an IPv6 address; a taken port is refused with
// EADDRINUSE, the addon's way and node's (WRENN_BOUND_SOCKET=0).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import { afterEach, test } from 'node:test';
import { openTcpForward, type TcpForward } from '../src/ports/tcp-forward.js';

const O_CLOEXEC = 0o2000000;

/** An upstream that greets, then echoes what it reads and ends once the client ended. */
function echoServer(host: string, port = 0): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const s = net.createServer({ allowHalfOpen: true }, (c) => {
      c.write(`hello from ${host}\n`);
      c.pipe(c);
    });
    s.once('error', reject);
    s.listen({ host, port }, () => resolve(s));
  });
}

const portOf = (s: net.Server) => (s.address() as net.AddressInfo).port;

/** Sends `text`, ends its side, and resolves with all it read until the other side ended. */
function roundTrip(host: string, port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, allowHalfOpen: true }, () => s.end(text));
    let got = '';
    s.on('data', (d: Buffer) => {
      got += d.toString();
    });
    s.once('error', reject);
    s.once('end', () => {
      s.destroy();
      resolve(got);
    });
  });
}

const open: (TcpForward | net.Server)[] = [];
afterEach(() => {
  for (const x of open.splice(0)) x.close();
  delete process.env.WRENN_BOUND_SOCKET;
});

test("a forward listens on the addon's socket, close-on-exec: a process started later does not hold it", async (t) => {
  const upstream = await echoServer('127.0.0.1');
  open.push(upstream);
  const port = portOf(upstream);
  // What the forward hands to listen(): the fd the addon bound, not a host to resolve.
  const calls: unknown[] = [];
  const listen = net.Server.prototype.listen;
  t.mock.method(net.Server.prototype, 'listen', function (this: net.Server, ...args: unknown[]) {
    calls.push(args[0]);
    return (listen as (...a: unknown[]) => net.Server).apply(this, args);
  });
  const fwd = await openTcpForward('127.0.0.2', port, '127.0.0.1');
  open.push(fwd);
  t.mock.restoreAll();
  assert.equal(calls.length, 1);
  const fd = (calls[0] as { fd?: unknown }).fd;
  assert.equal(typeof fd, 'number', JSON.stringify(calls));
  const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))?.[1];
  assert.ok(inode, `fd ${fd} is a socket`);
  const fdinfo = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  const flags = Number.parseInt(/^flags:\s+([0-7]+)/m.exec(fdinfo)?.[1] ?? '', 8);
  assert.ok(flags & O_CLOEXEC, `fd ${fd} (socket:[${inode}]) is not close-on-exec: flags ${flags.toString(8)}`);
  // The forward serves from it; a command started now does not hold it.
  const fds = execFileSync('/bin/sh', ['-c', 'for f in /proc/$$/fd/*; do readlink "$f"; done; echo END'], {
    encoding: 'utf8',
  });
  assert.match(fds, /END/);
  assert.doesNotMatch(fds, new RegExp(`socket:\\[${inode}\\]`));
  assert.equal(await roundTrip('127.0.0.2', port, 'ping\n'), 'hello from 127.0.0.1\nping\n');
});

test('forwards both ways with half-close, listening on IPv4 and on IPv6, bound by the addon or by node', async () => {
  for (const bound of ['1', '0']) {
    process.env.WRENN_BOUND_SOCKET = bound;
    for (const [listenHost, target] of [
      ['127.0.0.2', '127.0.0.1'],
      ['::1', '127.0.0.1'],
      ['127.0.0.2', '::1'],
    ] as const) {
      const upstream = await echoServer(target);
      const port = portOf(upstream);
      const fwd = await openTcpForward(listenHost, port, target);
      open.push(upstream, fwd);
      const what = `${listenHost} -> ${target} (WRENN_BOUND_SOCKET=${bound})`;
      // A body larger than a socket buffer, sent before the reply is read: back-pressure both ways.
      const big = 'x'.repeat(1 << 20);
      assert.equal(await roundTrip(listenHost, port, big), `hello from ${target}\n${big}`, what);
    }
  }
});

test('a taken port is refused with EADDRINUSE, bound by the addon or by node', async () => {
  const taken = await echoServer('127.0.0.2');
  open.push(taken);
  const port = portOf(taken);
  for (const bound of ['1', '0']) {
    process.env.WRENN_BOUND_SOCKET = bound;
    await assert.rejects(openTcpForward('127.0.0.2', port, '127.0.0.1'), (err: NodeJS.ErrnoException) => {
      assert.equal(err.code, 'EADDRINUSE', `WRENN_BOUND_SOCKET=${bound}: ${err.message}`);
      assert.match(err.message, /EADDRINUSE/);
      return true;
    });
  }
  // Nothing was left listening or open by the refused attempts: the port is still only the taker's.
  assert.equal(await roundTrip('127.0.0.2', port, 'still mine\n'), 'hello from 127.0.0.2\nstill mine\n');
});
