// E2B_DOMAIN mode (issue 20 part 2): `wrenn up` serving HTTPS with `--tls self-signed` on port 443
// of its own loopback address, and the official e2b SDK run as a user would with only E2B_DOMAIN,
// E2B_API_KEY and NODE_EXTRA_CA_CERTS set. The test's resolver (Debian's dnsmasq on another loopback
// address) answers *.wrenn.test with the control plane's address; the SDK runs in a child process in
// a mount namespace whose /etc/resolv.conf names that resolver (e2b-domain-child.ts), so nothing
// outside the test sees the names. Also hostile uses of the host-routed listener: look-alike host
// names, no SNI, and HTTP/2 requests whose :authority and host disagree.
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { killStaleDnsmasq } from '@wrenn/host-agent/testing/stale';
import { e2bKeyOf } from '../../src/auth/api-keys.js';
import { type Live, startLive } from '../../src/testing/live-up.js';

const DOMAIN = 'wrenn.test';
// 127/8 is loopback: an address of the test's own, so port 443 is free of anything else on the machine.
const CP_ADDRESS = '127.88.0.1';
const DNS_ADDRESS = '127.88.0.53';
const CHILD = join(import.meta.dirname, '..', 'e2b-domain-child.js');

/** How long a raw request of the hostile cases may take (they answer in milliseconds). */
const RAW_TIMEOUT_MS = 20_000;

interface Answer {
  status: number;
  body: string;
}

/** One HTTP/2 request to the listener (TLS with the given SNI, or none), with the given header fields. */
function h2Request(
  ca: Buffer,
  servername: string | undefined,
  headers: http2.OutgoingHttpHeaders,
  send?: string,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://${CP_ADDRESS}:443`, {
      ca,
      ...(servername ? { servername } : { servername: '', checkServerIdentity: () => undefined }),
    });
    session.on('error', reject);
    // A request that hangs fails the test with what it was, instead of holding the run.
    session.setTimeout(RAW_TIMEOUT_MS, () => {
      session.destroy();
      reject(new Error(`h2 ${JSON.stringify(headers)} (SNI ${servername}): no answer in ${RAW_TIMEOUT_MS} ms`));
    });
    const req = session.request(headers);
    let body = '';
    let status = 0;
    req.on('response', (h) => (status = Number(h[':status'])));
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      session.close();
      resolve({ status, body });
    });
    req.on('error', (e) => {
      session.destroy();
      reject(e);
    });
    req.end(send);
  });
}

/** One HTTP/1.1 request over TLS (SNI as given, or none) with a raw Host field. */
function h1Request(ca: Buffer, servername: string | undefined, host: string, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: CP_ADDRESS,
      port: 443,
      ca,
      ALPNProtocols: ['http/1.1'],
      ...(servername ? { servername } : { checkServerIdentity: () => undefined }),
    });
    let raw = '';
    socket.setTimeout(RAW_TIMEOUT_MS, () =>
      socket.destroy(new Error(`h1 ${host}${path} (SNI ${servername}): no answer in ${RAW_TIMEOUT_MS} ms`)),
    );
    socket.setEncoding('utf8');
    socket.on('secureConnect', () =>
      socket.write(`GET ${path} HTTP/1.1\r\nhost: ${host}\r\nconnection: close\r\n\r\n`),
    );
    socket.on('data', (d: string) => (raw += d));
    socket.on('error', reject);
    socket.on('close', () => {
      const [head = '', ...rest] = raw.split('\r\n\r\n');
      resolve({ status: Number(head.split(' ')[1]), body: rest.join('\r\n\r\n') });
    });
  });
}

function hasDnsmasq(): boolean {
  try {
    readFileSync('/usr/sbin/dnsmasq');
    return true;
  } catch {
    return false;
  }
}

/** Runs one scenario of e2b-domain-child.ts with only the SDK's three settings in its environment. */
function runSdk(
  scenario: string,
  env: { apiKey: string; caFile: string; resolvConf: string },
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    execFile(
      'unshare',
      [
        '--mount',
        '--propagation',
        'private',
        'sh',
        '-c',
        'mount --bind "$1" /etc/resolv.conf && exec "$2" "$3" "$4"',
        'sh',
        env.resolvConf,
        process.execPath,
        CHILD,
        scenario,
      ],
      {
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          E2B_DOMAIN: DOMAIN,
          E2B_API_KEY: env.apiKey,
          NODE_EXTRA_CA_CERTS: env.caFile,
        },
        timeout: 120_000,
        maxBuffer: 8 << 20,
      },
      (err, stdout, stderr) => {
        const line = stdout.trim().split('\n').pop() ?? '';
        try {
          const out = JSON.parse(line) as Record<string, unknown>;
          if (out.error) return reject(new Error(`${scenario}: ${String(out.error)}\n${stderr}`));
          resolve(out);
        } catch {
          reject(new Error(`${scenario} printed no result (${err?.message ?? ''}): ${stdout}\n${stderr}`));
        }
      },
    );
  });
}

describe('e2b SDK with only E2B_DOMAIN against wrenn up over TLS', {
  skip: !hasDnsmasq() && 'dnsmasq is not installed (npm run setup -- --tests)',
}, () => {
  let live: Live;
  let dns: ChildProcess | undefined;
  let dir: string;
  let env: { apiKey: string; caFile: string; resolvConf: string };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wrenn-domain-tls-'));
    const resolvConf = join(dir, 'resolv.conf');
    writeFileSync(resolvConf, `nameserver ${DNS_ADDRESS}\noptions timeout:1 attempts:2\n`);
    // A killed earlier run's resolver still holds the address (its after() never ran).
    await killStaleDnsmasq(DNS_ADDRESS);
    dns = spawn(
      'dnsmasq',
      [
        '--keep-in-foreground',
        '--conf-file=/dev/null',
        '--no-resolv',
        '--no-hosts',
        `--listen-address=${DNS_ADDRESS}`,
        '--bind-interfaces',
        '--port=53',
        `--address=/${DOMAIN}/${CP_ADDRESS}`,
        '--pid-file=',
        '--user=nobody',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let dnsErr = '';
    dns.stderr?.on('data', (d: Buffer) => (dnsErr += d.toString()));
    live = await startLive(8, 'domain-tls', {
      tls: 'self-signed',
      domain: DOMAIN,
      listen: { host: CP_ADDRESS, port: 443 },
    });
    if (dns.exitCode !== null) throw new Error(`dnsmasq exited: ${dnsErr}`);
    const caFile = live.up.cp.caFile;
    assert.ok(caFile, 'self-signed TLS names its CA');
    env = { apiKey: e2bKeyOf(live.apiKey), caFile, resolvConf };
  });
  after(async () => {
    dns?.kill();
    await live?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('creates, runs commands, moves files, signs URLs, serves getHost(), pauses, resumes and kills', async () => {
    const r = await runSdk('lifecycle', env);
    assert.deepEqual(r.env, { domain: DOMAIN, apiUrl: null, sandboxUrl: null }, 'only E2B_DOMAIN was set');
    assert.equal(r.sandboxDomain, DOMAIN);
    assert.match(String(r.echo), /^hi from /);
    assert.equal(r.read, 'hello over tls');
    assert.match(
      String(r.download),
      new RegExp(`^https://49983-cl-[0-9a-z]+\\.${DOMAIN.replace('.', '\\.')}/files\\?`),
    );
    assert.deepEqual(r.valid, { status: 200, body: 'hello over tls' });
    assert.deepEqual(r.timed, { status: 200, body: 'hello over tls' });
    assert.equal((r.expired as { status: number }).status, 401, JSON.stringify(r.expired));
    assert.equal((r.wrong as { status: number }).status, 401, JSON.stringify(r.wrong));
    assert.equal(r.uploaded, 200);
    assert.equal(r.upRead, 'uploaded over tls');
    assert.match(String(r.host), new RegExp(`^8080-cl-[0-9a-z]+\\.${DOMAIN.replace('.', '\\.')}$`));
    assert.deepEqual(r.page, { status: 200, body: 'page' });
    assert.deepEqual(r.seenHost, { status: 200, body: String(r.host) }, 'the server sees the public host name');
    assert.equal(r.pausedState, 'paused');
    assert.equal(r.afterResume, 'hello over tls');
    assert.equal(r.running, true);
    assert.equal(r.gone, 'SandboxNotFoundError');
  });

  it('allowPublicTraffic: false guards the ports by token (envd excepted, auto-resume too); maskRequestHost', async () => {
    const r = await runSdk('private', env);
    assert.ok(Number(r.tokenLength) >= 20, 'the create answer carries a trafficAccessToken');
    assert.deepEqual(r.allowed, { status: 200, body: 'page' });
    for (const k of ['none', 'wrong', 'empty'] as const) {
      const a = r[k] as Answer;
      assert.equal(a.status, 403, `${k}: ${a.body}`);
      assert.equal(JSON.parse(a.body).code, 403);
      assert.doesNotMatch(a.body, /page/);
    }
    assert.deepEqual(r.seenHost, { status: 200, body: 'masked.example:8080' }, 'the server sees the masked host');
    assert.equal(r.envd, 'envd ok');
    assert.deepEqual(r.network, { allowPublicTraffic: false, maskRequestHost: 'masked.example:${PORT}' });
    assert.equal((r.pausedNoToken as Answer).status, 403, 'no token: no answer and no wake');
    assert.equal(r.stillPaused, 'paused');
    assert.deepEqual(r.wokenWithToken, { status: 200, body: 'page' }, 'the token wakes it (autoResume)');
    assert.equal(r.afterWake, 'running');
    assert.deepEqual(r.neighbour, { status: 200, body: r.neighbourHost }, 'a public neighbour needs no token');
  });

  it('the native API takes allow_public_traffic and mask_request_host; HTTP/2 requests are checked too', async () => {
    const ca = readFileSync(env.caFile);
    const api = `api.${DOMAIN}`;
    const create = (network: Record<string, unknown>) =>
      h2Request(
        ca,
        api,
        {
          ':method': 'POST',
          ':path': '/v1/capsules',
          ':authority': api,
          'x-api-key': live.apiKey,
          'content-type': 'application/json',
        },
        JSON.stringify({ template: 'minimal', network }),
      );
    const created = await create({ allow_public_traffic: false, mask_request_host: 'in.example:${PORT}' });
    assert.equal(created.status, 201, created.body);
    const c = JSON.parse(created.body) as { id: string; traffic_access_token: string; mask_request_host: string };
    try {
      assert.ok(c.traffic_access_token.length >= 20);
      assert.equal(c.mask_request_host, 'in.example:${PORT}');
      const port = `3000-${c.id}.${DOMAIN}`;
      const none = await h2Request(ca, port, { ':path': '/', ':authority': port });
      assert.equal(none.status, 403, none.body);
      // With the token the request reaches the capsule, where nothing listens on 3000 (E2B's 502).
      const withToken = await h2Request(ca, port, {
        ':path': '/',
        ':authority': port,
        'e2b-traffic-access-token': c.traffic_access_token,
      });
      assert.equal(withToken.status, 502, withToken.body);
      assert.match(withToken.body, /port is not open/);
      const bad = await create({ mask_request_host: 'bad host\r\nx: y' });
      assert.equal(bad.status, 400, bad.body);
    } finally {
      await h2Request(ca, api, {
        ':method': 'DELETE',
        ':path': `/v1/capsules/${c.id}`,
        ':authority': api,
        'x-api-key': live.apiKey,
      });
    }
  });

  it('hostile: look-alike hosts, no SNI and a disagreeing :authority reach no capsule by mistake', async () => {
    const ca = readFileSync(env.caFile);
    const s = await runSdk('serve', env);
    assert.deepEqual(s.ready, { status: 200, body: 'page' });
    const host = String(s.host);
    // The capsule's host under another domain, or with the domain as a mere prefix: the API
    // answers (its dashboard page, or 404 for an API path), never the capsule.
    for (const evil of [`${host}.evil`, `${host}.evil:443`, host.replace(`.${DOMAIN}`, `.${DOMAIN}x`)]) {
      const page = await h1Request(ca, `api.${DOMAIN}`, evil, '/index.html');
      assert.match(page.body, /Wrenn dashboard/, `${evil}: ${page.status} ${page.body}`);
      const cgi = await h1Request(ca, `api.${DOMAIN}`, evil, '/v1/cgi-bin/host');
      assert.equal(cgi.status, 404, `${evil}: ${cgi.body}`);
    }
    // No SNI at all: the certificate still comes, and routing is by the request's host alone.
    assert.deepEqual(await h1Request(ca, undefined, host, '/index.html'), { status: 200, body: 'page' });
    const apiNoSni = await h1Request(ca, undefined, `api.${DOMAIN}`, '/health');
    assert.equal(apiNoSni.status, 200, apiNoSni.body);
    // HTTP/2: :authority routes each stream (one TLS connection may carry both names, as the
    // wildcard certificate covers both); a host field that disagrees with it is refused.
    const viaH2 = await h2Request(ca, `api.${DOMAIN}`, { ':path': '/index.html', ':authority': host });
    assert.deepEqual(viaH2, { status: 200, body: 'page' });
    const seen = await h2Request(ca, host, { ':path': '/cgi-bin/host', ':authority': host });
    assert.deepEqual(seen, { status: 200, body: host }, 'the capsule sees :authority as its Host');
    const mismatched = await h2Request(ca, `api.${DOMAIN}`, {
      ':path': '/index.html',
      ':authority': `api.${DOMAIN}`,
      host,
    });
    assert.equal(mismatched.status, 400, mismatched.body);
    const reversed = await h2Request(ca, host, { ':path': '/index.html', ':authority': host, host: `api.${DOMAIN}` });
    assert.equal(reversed.status, 400, reversed.body);
    // The neighbour (the capsule itself here) keeps answering.
    assert.deepEqual(await h1Request(ca, host, host, '/index.html'), { status: 200, body: 'page' });
  });
});
