// How the port forwarder learns about listening sockets without walking the host-wide TCP hash:
// the sockstat counters it gates on, and the netlink sock_diag (inet_diag) dump it lists them with.
// Parsers against inputs recorded from this kernel; the dump against real sockets.
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { formatAddress } from '../src/ports/addresses.js';
import { loadSockDiag, parseInetDiagMessages, readTcpListenersDiag } from '../src/ports/inet-diag.js';
import { parseProcNetTcp, readTcpListeners, type TcpListener } from '../src/ports/proc-net-tcp.js';
import { parseSockstat } from '../src/ports/sockstat.js';

// /proc/net/sockstat and sockstat6 inside a namespace with 2 IPv4 listeners, one connection (both
// ends) and 3 IPv6 listeners (kernel 6.18).
const SOCKSTAT = `sockets: used 9
TCP: inuse 4 orphan 1 tw 0 alloc 9 mem 0
UDP: inuse 0 mem 0
UDPLITE: inuse 0
RAW: inuse 0
FRAG: inuse 0 memory 0
`;
const SOCKSTAT6 = `TCP6: inuse 3
UDP6: inuse 0
UDPLITE6: inuse 0
RAW6: inuse 0
FRAG6: inuse 0 memory 0
`;

test('parseSockstat reads the TCP and TCP6 in-use counts', () => {
  assert.deepEqual(parseSockstat(SOCKSTAT + SOCKSTAT6), { tcp: 4, tcp6: 3 });
  assert.deepEqual(parseSockstat(SOCKSTAT), { tcp: 4 });
  assert.deepEqual(parseSockstat('sockets: used 1\nUDP: inuse 0 mem 0\n'), {});
});

// The same namespace's LISTEN dumps (inet_diag_req_v2, states 1 << TCP_LISTEN), one netlink
// message a line, as the kernel wrote them (x86-64, little endian headers).
const DUMP_V4 = [
  '7c000000140002000100000038790000020a00001f900000000000000000000000000000000000000000000000000000000000000000000000000000031000000000000000000000000000008000000000000000044d7101050008000000000008000f00000000000c00150001000000000000000600160052000000',
  '7c000000140002000100000038790000020a00000bb800007f0000010000000000000000000000000000000000000000000000000000000000000000041000000000000000000000010000008000000000000000024d7101050008000000000008000f00000000000c00150001000000000000000600160052000000',
].join('');
const DUMP_V6 = [
  '8400000014000200010000003a7900000a0a00001f910000000000000000000000000000000000000000000000000000000000000000000000000000051000000000000000000000000000008000000000000000064d7101050008000000000005000b000000000008000f00000000000c00150001000000000000000600160012000000',
  '8400000014000200010000003a7900000a0a00000bba000000000000000000000000ffff7f0000010000000000000000000000000000000000000000061000000000000000000000000000008000000000000000054d7101050008000000000005000b000000000008000f00000000000c00150001000000000000000600160012000000',
  '8400000014000200010000003a7900000a0a00000bb90000000000000000000000000000000000010000000000000000000000000000000000000000071000000000000000000000000000008000000000000000034d7101050008000000000005000b000100000008000f00000000000c00150001000000000000000600160012000000',
].join('');

test('parseInetDiagMessages reads family, address and port of each listener', () => {
  assert.deepEqual(parseInetDiagMessages(Buffer.from(DUMP_V4, 'hex'), true), [
    { family: 4, address: '0.0.0.0', port: 8080 },
    { family: 4, address: '127.0.0.1', port: 3000 },
  ]);
  assert.deepEqual(parseInetDiagMessages(Buffer.from(DUMP_V6, 'hex'), true), [
    { family: 6, address: '::', port: 8081 },
    { family: 6, address: '::ffff:127.0.0.1', port: 3002 },
    { family: 6, address: '::1', port: 3001 },
  ]);
  assert.deepEqual(parseInetDiagMessages(Buffer.alloc(0), true), []);
});

test('parseInetDiagMessages refuses a message cut short', () => {
  const cut = Buffer.from(DUMP_V4, 'hex').subarray(0, 100);
  assert.throws(() => parseInetDiagMessages(cut, true), /bad netlink message length 124 at offset 0/);
});

test('formatAddress: IPv4, IPv6 compressed, IPv4-mapped dotted (so loopback checks see 127.x)', () => {
  assert.equal(formatAddress(Uint8Array.from([127, 0, 0, 1])), '127.0.0.1');
  assert.equal(formatAddress(Buffer.from('00000000000000000000000000000001', 'hex')), '::1');
  assert.equal(formatAddress(Buffer.from('fd000000000000000000000000000a02', 'hex')), 'fd00::a02');
  assert.equal(formatAddress(Buffer.from('00000000000000000000ffff7f000001', 'hex')), '::ffff:127.0.0.1');
  assert.throws(() => formatAddress(Uint8Array.from([1, 2, 3])), /4 or 16 bytes/);
  // /proc/net/tcp6 prints a mapped listener the same way now.
  const line =
    '   0: 0000000000000000FFFF00000100007F:0BBA 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0';
  assert.deepEqual(parseProcNetTcp(`header\n${line}\n`, 6), [{ family: 6, address: '::ffff:127.0.0.1', port: 3002 }]);
});

function listen(host: string): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen({ host, port: 0 }, () => resolve(s));
  });
}

test('the sock_diag dump lists the same listeners as /proc/net/tcp, mapped and IPv6 ones included', async (t) => {
  const binding = loadSockDiag();
  if (!binding) return t.skip('@wrenn/native has no inetDiagDump (addon not built)');
  const servers = await Promise.all(['127.0.0.1', '::1', '::ffff:127.0.0.1', '0.0.0.0'].map(listen));
  t.after(() => {
    for (const s of servers) s.close();
  });
  const ports = new Set(servers.map((s) => (s.address() as net.AddressInfo).port));
  const mine = (list: TcpListener[]) => list.filter((l) => ports.has(l.port));
  const byKey = (a: TcpListener, b: TcpListener) =>
    `${a.family} ${a.address} ${a.port}`.localeCompare(`${b.family} ${b.address} ${b.port}`);
  const viaDiag = mine(readTcpListenersDiag(binding)).sort(byKey);
  const viaProc = mine(await readTcpListeners()).sort(byKey);
  assert.equal(viaDiag.length, 4, JSON.stringify(viaDiag));
  assert.deepEqual(viaDiag, viaProc);
  assert.ok(viaDiag.some((l) => l.address === '::ffff:127.0.0.1' && l.family === 6));
  // Closed: gone from the next dump.
  const closed = servers.pop()!;
  const port = (closed.address() as net.AddressInfo).port;
  await new Promise((r) => closed.close(r));
  assert.ok(!readTcpListenersDiag(binding).some((l) => l.port === port));
});

test('inetDiagDump validates its arguments', (t) => {
  const binding = loadSockDiag();
  if (!binding) return t.skip('@wrenn/native has no inetDiagDump (addon not built)');
  assert.throws(() => binding.inetDiagDump(1, 6, 1024), /AF_INET \(2\) or AF_INET6 \(10\)/);
  assert.throws(() => binding.inetDiagDump(2, -1, 1024), TypeError);
});
