// Egress policy (E2B's network.allowOut/denyOut/rules) on a capsule's network namespace, probed as
// root inside it: CIDR and IP allow/deny in the kernel (TCP and UDP), allow beating deny, the
// all-traffic selector, an update on a running capsule, domains and *.domain through the agent's
// egress proxy (HTTP Host and TLS SNI), header injection, and the attacks on it: a spoofed SNI
// dialled at another address, a name that rebinds to a private address, raw UDP around the proxy,
// while a neighbour without a policy keeps its internet. Every "internet" host is in a namespace
// this test creates (198.18.7.0/24); no packet leaves the machine.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { INET, INET_TCP_PORT, RESOLVE } from '../../src/testing/egress-internet.js';
import { execFileP, probeFrom, udpProbeFrom } from '../network-helpers.js';
import { egressSuite, rootOnly } from './egress-suite.js';

const opts = rootOnly;
const suite = egressSuite('ep');
const capsule = suite.capsule;

/** curl inside the capsule's namespace; `to` pins the name to an address as the capsule's DNS would. */
async function curl(
  netns: string,
  url: string,
  to?: string,
  cacert = suite.inet.caFile,
  extra: string[] = [],
): Promise<{ code: number; body: string }> {
  const u = new URL(url);
  const port = u.protocol === 'https:' ? 443 : 80;
  const args = ['netns', 'exec', netns, 'curl', '-sS', '--max-time', '5', '--cacert', cacert];
  if (to) args.push('--resolve', `${u.hostname}:${port}:${to}`);
  const r = await execFileP('ip', [...args, ...extra, '-w', '\\n%{http_code}', url]).catch(
    (e: { stdout?: string; code?: number }) => ({ stdout: `${e.stdout ?? ''}\n000`, code: e.code }),
  );
  const lines = r.stdout.trimEnd().split('\n');
  return { code: Number(lines.pop()), body: lines.join('\n') };
}

const served = (body: string) => JSON.parse(body) as { server: string; host: string; headers: Record<string, string> };

test('the internet stand-in answers the host directly', opts, async () => {
  const n = await capsule();
  assert.equal((await probeFrom(n.netnsName, INET.a, INET_TCP_PORT, 3000)).ok, true);
  assert.equal(served((await curl(n.netnsName, 'https://b.egress.test/', INET.b)).body).server, INET.b);
});

test('denyOut by IP and CIDR refuses TCP and UDP at once; the rest stays reachable', opts, async () => {
  const ip = await capsule({ denyOut: [INET.b] });
  const cidr = await capsule({ denyOut: ['198.18.7.8/29'] });
  const neighbour = await capsule();
  for (const n of [ip, cidr]) {
    assert.deepEqual(await probeFrom(n.netnsName, INET.b, INET_TCP_PORT, 3000), { ok: false, error: 'ECONNREFUSED' });
    assert.equal((await udpProbeFrom(n.netnsName, INET.b, 5353, 1500)).ok, false, 'UDP denied too');
    assert.equal((await probeFrom(n.netnsName, INET.a, INET_TCP_PORT, 3000)).ok, true);
  }
  assert.equal(
    (await probeFrom(neighbour.netnsName, INET.b, INET_TCP_PORT, 3000)).ok,
    true,
    'the neighbour is unaffected',
  );
  assert.equal((await udpProbeFrom(neighbour.netnsName, INET.b, 5353, 1500)).ok, true);
});

test('all-traffic deny with allowOut: allow takes precedence; DNS refused without domain rules', opts, async () => {
  const only = await capsule({ denyOut: ['0.0.0.0/0'], allowOut: [INET.a] });
  const both = await capsule({ denyOut: ['0.0.0.0/0'], allowOut: [INET.a, `${INET.b}/32`] });
  const none = await capsule({ denyOut: ['0.0.0.0/0'] });
  assert.equal((await probeFrom(only.netnsName, INET.a, INET_TCP_PORT, 3000)).ok, true);
  assert.deepEqual(await probeFrom(only.netnsName, INET.b, INET_TCP_PORT, 3000), { ok: false, error: 'ECONNREFUSED' });
  assert.equal((await probeFrom(both.netnsName, INET.b, INET_TCP_PORT, 3000)).ok, true, 'allow beats deny');
  assert.equal((await probeFrom(none.netnsName, INET.a, INET_TCP_PORT, 3000)).ok, false);
  assert.equal((await udpProbeFrom(none.netnsName, INET.b, 5353, 1500)).ok, false);
  const dns = await execFileP('ip', [
    'netns',
    'exec',
    none.netnsName,
    process.execPath,
    '-e',
    RESOLVE,
    INET.dns,
    'a.egress.test',
  ]);
  assert.notEqual(dns.stdout.trim(), INET.a, 'name server refused under deny-all');
});

test('an update on a running capsule applies to new connections at once, and can clear the policy', opts, async () => {
  const n = await capsule();
  assert.equal((await probeFrom(n.netnsName, INET.b, INET_TCP_PORT, 3000)).ok, true);
  await suite.m.setPolicy(n.id, { denyOut: [INET.b] });
  assert.deepEqual(await probeFrom(n.netnsName, INET.b, INET_TCP_PORT, 3000), { ok: false, error: 'ECONNREFUSED' });
  assert.equal((await probeFrom(n.netnsName, INET.a, INET_TCP_PORT, 3000)).ok, true);
  await suite.m.setPolicy(n.id, { denyOut: ['0.0.0.0/0'], allowOut: [INET.b] });
  assert.equal((await probeFrom(n.netnsName, INET.b, INET_TCP_PORT, 3000)).ok, true);
  assert.equal((await probeFrom(n.netnsName, INET.a, INET_TCP_PORT, 3000)).ok, false);
  await suite.m.setPolicy(n.id, {});
  assert.equal((await probeFrom(n.netnsName, INET.a, INET_TCP_PORT, 3000)).ok, true, 'an empty policy clears it');
  assert.deepEqual((await suite.m.get(n.id))?.denyOut, []);
});

test('domains: allowOut names and *.domain pass the egress proxy on 80 and 443; other names do not', opts, async () => {
  const n = await capsule({ denyOut: ['0.0.0.0/0'], allowOut: ['a.egress.test', '*.wild.egress.test'] });
  // The capsule's DNS works under deny-all (its name servers stay open with domain rules).
  const dns = await execFileP('ip', [
    'netns',
    'exec',
    n.netnsName,
    process.execPath,
    '-e',
    RESOLVE,
    INET.dns,
    'a.egress.test',
  ]);
  assert.equal(dns.stdout.trim(), INET.a);
  for (const url of ['https://a.egress.test/', 'http://a.egress.test/']) {
    const r = await curl(n.netnsName, url, INET.a);
    assert.equal(r.code, 200, `${url}: ${r.body}`);
    assert.equal(served(r.body).server, INET.a);
  }
  const wild = await curl(n.netnsName, 'https://x.wild.egress.test/', INET.b);
  assert.equal(wild.code, 200, wild.body);
  assert.equal(
    (await curl(n.netnsName, 'https://wild.egress.test/', INET.b)).code,
    0,
    '*. does not match the domain itself',
  );
  assert.equal((await curl(n.netnsName, 'https://b.egress.test/', INET.b)).code, 0, 'a name not allowed');
  const http = await curl(n.netnsName, 'http://b.egress.test/', INET.b);
  assert.equal(http.code, 403);
  assert.match(http.body, /wrenn egress: b\.egress\.test is denied by denyOut/);
  // Other ports to an address reached by name only are refused by the kernel.
  assert.equal((await probeFrom(n.netnsName, INET.a, INET_TCP_PORT, 2000)).ok, false);
});

test(
  'hostile: a spoofed SNI reaches only the host it names; rebinding to a private address and raw UDP are refused',
  opts,
  async () => {
    const n = await capsule({ denyOut: ['0.0.0.0/0'], allowOut: ['a.egress.test', 'rebind.egress.test'] });
    const neighbour = await capsule();
    // Dial b's address with a's name: the proxy connects to a (what the name resolves to), never to b.
    const spoof = await curl(n.netnsName, 'https://a.egress.test/', INET.b);
    assert.equal(spoof.code, 200, spoof.body);
    assert.equal(served(spoof.body).server, INET.a, 'the spoofed SNI did not reach the dialled address');
    const plainSpoof = await curl(n.netnsName, 'http://a.egress.test/', INET.b);
    assert.equal(served(plainSpoof.body).server, INET.a);
    // An allowed name whose DNS answer is private (rebinding): refused by the proxy.
    assert.equal((await curl(n.netnsName, 'http://rebind.egress.test/', INET.a)).code, 403);
    assert.equal((await curl(n.netnsName, 'https://rebind.egress.test/', INET.a)).code, 0);
    // Raw UDP (QUIC-like, to 443) goes around no proxy: refused by the kernel.
    assert.equal((await udpProbeFrom(n.netnsName, INET.b, 5353, 1500)).ok, false);
    // The neighbour without a policy: everything as before, and not through the proxy.
    assert.equal(served((await curl(neighbour.netnsName, 'https://b.egress.test/', INET.b)).body).server, INET.b);
  },
);

test(
  'rules: header injection on HTTP and HTTPS requests to one domain; the capsule never holds the value',
  opts,
  async () => {
    const secret = `s3cret-${process.pid}`;
    const n = await capsule({
      allowOut: ['a.egress.test'],
      denyOut: ['0.0.0.0/0'],
      rules: { 'a.egress.test': [{ transform: { headers: { 'X-Api-Key': secret, 'User-Agent': 'wrenn-rule' } } }] },
    });
    const r = await curl(n.netnsName, 'http://a.egress.test/get', INET.a);
    assert.equal(r.code, 200, r.body);
    const h = served(r.body).headers;
    assert.equal(h['x-api-key'], secret);
    assert.equal(h['user-agent'], 'wrenn-rule', 'an existing header is replaced');
    // HTTPS: terminated with the egress CA's certificate for the name, re-sent verified upstream.
    const tls = await curl(n.netnsName, 'https://a.egress.test/get', INET.a, suite.bothCas);
    assert.equal(tls.code, 200, tls.body);
    assert.equal(served(tls.body).headers['x-api-key'], secret);
    assert.equal(served(tls.body).server, INET.a);
    // Without the egress CA the capsule's client refuses the proxy's certificate (fails closed).
    assert.equal((await curl(n.netnsName, 'https://a.egress.test/get', INET.a)).code, 0);
    // A Host other than the TLS name inside a terminated connection is refused.
    const other = await curl(n.netnsName, 'https://a.egress.test/', INET.a, suite.bothCas, [
      '-H',
      'Host: b.egress.test',
    ]);
    assert.notEqual(other.code, 200);
    // The value lives in the agent's records only: nothing in the namespace names it.
    const inside = await execFileP('ip', ['netns', 'exec', n.netnsName, 'sh', '-c', 'ip addr; cat /proc/net/tcp']);
    assert.equal(inside.stdout.includes(secret), false);
  },
);
