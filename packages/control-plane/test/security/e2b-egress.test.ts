// Egress policy through the official e2b SDK on real capsules (namespace runtime, `base` template),
// probed as root inside them: `network.allowOut/denyOut` at create (CIDR, IP, domain, *.domain,
// the all-traffic selector, allow beating deny), `updateNetwork` on a running sandbox, the policy
// kept across pause/resume, header injection by `rules` on HTTP and HTTPS (the capsule trusts the
// agent's egress CA, never holds the value), and
// the attacks: a spoofed SNI, raw UDP, an IP literal in the Host header; a neighbour without a
// policy keeps its internet. The "internet" is the test's own namespace in 198.18.7.0/24 with its
// own name server, given to the agent as the capsules' DNS; no packet leaves the machine.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  createInternet,
  INET,
  INET_TCP_PORT,
  type Internet,
  internetLeftovers,
  killChildren,
  removeInternet,
} from '@wrenn/host-agent/testing/egress';
import { ALL_TRAFFIC, CommandExitError, Sandbox } from 'e2b';
import { type LiveSystem, SHARED_IMAGES, startLive } from '../e2b-live.js';

const isRoot = process.getuid?.() === 0;

describe('e2b SDK: egress policy on real capsules', { skip: isRoot ? false : 'needs root' }, () => {
  let sys: LiveSystem;
  let inet: Internet;
  const created: Sandbox[] = [];
  const make = async (network?: NonNullable<Parameters<typeof Sandbox.create>[1]>['network']) => {
    const s = await Sandbox.create('base', { ...sys.sdk(), timeoutMs: 300_000, ...(network ? { network } : {}) });
    created.push(s);
    await s.files.write('/tmp/ca.pem', inet.caPem);
    return s;
  };
  /** curl inside the sandbox as root: the HTTP status, or the exit code when it failed. */
  const curl = async (s: Sandbox, args: string, cacert = '--cacert /tmp/ca.pem') => {
    const r = await s.commands
      .run(`curl -sS --max-time 5 ${cacert} -o /tmp/body -w '%{http_code}' ${args}`, { user: 'root' })
      .catch((e: unknown) => (e instanceof CommandExitError ? e : Promise.reject(e)));
    const body = r.exitCode === 0 ? await s.files.read('/tmp/body') : '';
    return { exit: r.exitCode, status: r.stdout.trim(), body };
  };
  const servedBy = (body: string) => (JSON.parse(body) as { server: string }).server;

  before(async () => {
    if (!isRoot) return;
    inet = await createInternet();
    sys = await startLive({
      db: 'sqlite',
      slot: 8,
      imagesDir: SHARED_IMAGES,
      network: { dnsServers: [INET.dns], egressAllow: [INET.range], egressUpstreamCa: [inet.caPem] },
    });
  });
  after(async () => {
    if (!isRoot) return;
    for (const s of created) await s.kill().catch(() => undefined);
    await sys?.close();
    killChildren();
    await inet?.stop();
    await removeInternet();
    assert.deepEqual(internetLeftovers(), []);
  });

  it('deny all but allowOut (IP, domain, *.domain): the kernel and the egress proxy enforce it; the neighbour is unaffected', async () => {
    const s = await make({ denyOut: [ALL_TRAFFIC], allowOut: [INET.a, 'b.egress.test', '*.wild.egress.test'] });
    const neighbour = await make();
    // By address (kernel): allowed IP yes, other IPs no, on any port.
    const a = await curl(s, `http://${INET.a}/`);
    assert.equal(a.status, '200');
    assert.equal(servedBy(a.body), INET.a);
    assert.notEqual((await curl(s, `http://${INET.b}:${INET_TCP_PORT}/`)).exit, 0);
    // By name (proxy, resolved by the capsule's own DNS): allowed names pass on 80 and 443.
    for (const url of ['https://b.egress.test/', 'http://b.egress.test/', 'https://x.wild.egress.test/']) {
      const r = await curl(s, url);
      assert.equal(r.status, '200', `${url}: ${JSON.stringify(r)}`);
      assert.equal(servedBy(r.body), INET.b);
    }
    // The same address by an IP literal in Host (proxy judges the address: denied).
    assert.equal((await curl(s, `http://${INET.b}/`)).status, '403');
    // SNI spoof: dial a denied address with b's name: the proxy connects to b, never to the address dialled.
    const spoof = await curl(s, `--resolve b.egress.test:443:${INET.dns} https://b.egress.test/`);
    assert.equal(servedBy(spoof.body), INET.b);
    // Raw UDP around the proxy: refused.
    const udp = await s.commands.run(
      `python3 -c "import socket; u=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(1.5); u.sendto(b'x', ('${INET.b}', 5353)); print(u.recvfrom(100)[0])" || echo refused`,
      { user: 'root' },
    );
    assert.match(udp.stdout, /refused/);
    // Root cannot lift it: no CAP_NET_ADMIN over its network namespace.
    const flush = await s.commands.run('iptables -F 2>&1; ip route del default 2>&1; echo done', { user: 'root' });
    assert.match(flush.stdout, /done/);
    assert.notEqual((await curl(s, `http://${INET.b}:${INET_TCP_PORT}/`)).exit, 0);
    // The neighbour without a policy: everything, directly.
    assert.equal(servedBy((await curl(neighbour, `http://${INET.b}/`)).body), INET.b);
  });

  it('updateNetwork on a running sandbox applies at once, survives pause/resume, and clears', async () => {
    const s = await make();
    assert.equal((await curl(s, `http://${INET.a}/`)).status, '200');
    await s.updateNetwork({ denyOut: [INET.a] });
    assert.notEqual((await curl(s, `http://${INET.a}/`)).status, '200');
    assert.equal((await curl(s, `http://${INET.b}/`)).status, '200');
    await s.pause();
    // Changed while paused (a rule added): applied, and the egress CA trusted, once it resumes.
    const rule = { 'b.egress.test': [{ transform: { headers: { 'X-Paused': '1' } } }] };
    await Sandbox.updateNetwork(s.sandboxId, { denyOut: [INET.a], rules: rule }, sys.sdk());
    const again = await Sandbox.connect(s.sandboxId, sys.sdk());
    assert.notEqual((await curl(again, `http://${INET.a}/`)).status, '200', 'kept across pause/resume');
    const trust = await again.commands.run('test -s /usr/local/share/ca-certificates/wrenn-egress-ca.crt && echo yes');
    assert.equal(trust.stdout.trim(), 'yes');
    const native = await fetch(`${sys.url}/v1/capsules/${s.sandboxId}/network`, {
      headers: { 'x-api-key': sys.adminKey },
    });
    assert.deepEqual(await native.json(), { allow_out: [], deny_out: [`${INET.a}/32`], rules: rule });
    await again.updateNetwork({});
    assert.equal((await curl(again, `http://${INET.a}/`)).status, '200', 'omitted fields clear the rules');
  });

  it('rules: a header injected on requests to one domain; the value is nowhere inside the capsule', async () => {
    const secret = `wrenn-secret-${process.pid}-${Date.now()}`;
    const s = await make({
      allowOut: ['a.egress.test'],
      denyOut: [ALL_TRAFFIC],
      rules: { 'a.egress.test': [{ transform: { headers: { 'X-Api-Key': secret } } }] },
    });
    const r = await curl(s, 'http://a.egress.test/headers');
    assert.equal(r.status, '200', JSON.stringify(r));
    assert.equal((JSON.parse(r.body) as { headers: Record<string, string> }).headers['x-api-key'], secret);
    // HTTPS: the capsule trusts the egress CA (added to its store at create), the proxy re-sends it.
    const tls = await curl(s, 'https://a.egress.test/headers', '');
    assert.equal(tls.status, '200', JSON.stringify(tls));
    assert.equal((JSON.parse(tls.body) as { headers: Record<string, string> }).headers['x-api-key'], secret);
    const trust = await s.commands.run('grep -c BEGIN /usr/local/share/ca-certificates/wrenn-egress-ca.crt');
    assert.equal(trust.stdout.trim(), '1');
    // The test's server echoes it back into /tmp/body: that copy is the server's doing, not the proxy's.
    await s.commands.run('rm -f /tmp/body', { user: 'root' });
    const look = await s.commands.run(
      `grep -rls '${secret}' /etc /tmp /home /root /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | grep -v '^/proc/self' | grep -v "^/proc/$$/" ; env | grep -c '${secret}' || true`,
      { user: 'root' },
    );
    // Only the grep itself names it (its own cmdline); no file, env or other process holds it.
    const hits = look.stdout
      .split('\n')
      .filter((l) => l.trim() && !/^\/proc\/\d+\/cmdline$/.test(l) && l.trim() !== '0');
    assert.deepEqual(hits, []);
  });

  it('bad policies are refused with 400 and the entry named', async () => {
    const post = (body: unknown) =>
      fetch(`${sys.url}/sandboxes`, {
        method: 'POST',
        headers: { 'x-api-key': sys.sdk().apiKey, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    for (const [network, re] of [
      [{ allowOut: ['10.0.0.1/8'] }, /host bits set/],
      [{ denyOut: ['example.com'] }, /takes no domain names/],
      [{ allowOut: ['192.168.1.0/24'] }, /WRENN_EGRESS_OPENABLE_CIDRS/],
      [{ egressProxy: { address: 'p:1080' } }, /egressProxy is not supported/],
      [{ rules: { 'a.b': [{ transform: { headers: { 'x-a': 'a\r\nb' } } }] } }, /without CR, LF/],
    ] as const) {
      const r = await post({ templateID: 'base', network });
      assert.equal(r.status, 400, JSON.stringify(network));
      assert.match(((await r.json()) as { message: string }).message, re);
    }
  });
});
