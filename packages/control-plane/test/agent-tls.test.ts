// The control plane ↔ remote host agent link over TLS: an agent serving its own self-signed
// certificate registers it with a one-time token (the agent-side client, as `wrenn agent` does),
// capsules are created, exec'd and given files through it (RPCs and the sandbox proxy, both pinned
// to that certificate), while `wrenn up`'s own agent stays in process. Hostile: registrations that
// name another certificate or none are refused; a man-in-the-middle at the agent's address with
// another certificate gets no request (no secret, no proxied traffic) and every path says why; the
// real agent back at its address is served again; a changed certificate needs a new registration.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { AGENT_TLS_DIR, RegistrationError, registerWithControlPlane } from '@wrenn/host-agent';
import { makeCertificate, serverExtensions } from '@wrenn/host-agent/tls';
import { Sandbox } from 'e2b';
import { getCapsule } from '../src/db/repositories/capsules.js';
import { getHost } from '../src/db/repositories/hosts.js';
import { HostMonitor } from '../src/hosts/index.js';
import { probeHost } from '../src/hosts/probe.js';
import { type ExtraAgent, type LiveSystem, startLive } from './e2b-live.js';

const SLOT = 4;
const EXTRA_SLOT = 5;
const MISMATCH = /did not present the TLS certificate it registered with/;

async function post(url: string, body: unknown, key?: string) {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { 'x-api-key': key } : {}) },
    body: JSON.stringify(body),
  });
  return { status: r.status, body: (await r.json()) as { error?: { message: string }; token?: string } };
}

/** Another self-signed certificate and key, as an impostor would have. */
function otherCertificate(dir: string): { cert: string; key: string } {
  const [certFile, keyFile] = [join(dir, 'mitm.crt'), join(dir, 'mitm.key')];
  makeCertificate({
    certFile,
    keyFile,
    subject: '/CN=wrenn host agent',
    days: 2,
    extensions: serverExtensions(['DNS:localhost', 'IP:127.0.0.1']),
  });
  return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
}

describe('agent link over TLS', () => {
  let sys: LiveSystem;
  let extra: ExtraAgent;
  let scratch: string;
  let mitm: { cert: string; key: string };
  let hostB = '';
  let onB = '';
  const dbh = () => sys.cp.ctx.database.db;
  const stateFile = () => join(extra.dataDir, 'registration.json');
  const newToken = async () => (await post(`${sys.url}/v1/hosts/tokens`, {}, sys.adminKey)).body.token as string;

  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'wrenn-agent-tls-'));
    mitm = otherCertificate(scratch);
    sys = await startLive({ db: 'sqlite', slot: SLOT });
    extra = await sys.startExtraAgent(EXTRA_SLOT, { tls: 'self-signed' });
  });
  after(async () => {
    try {
      await sys?.close(); // destroys the extra agent too
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });

  it('serves TLS with a certificate made under its data dir', () => {
    assert.match(extra.agent.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(extra.agent.tls, 'the running agent reports its certificate');
    assert.equal(readFileSync(join(extra.dataDir, AGENT_TLS_DIR, 'agent.crt'), 'utf8'), extra.agent.tls.certPem);
    assert.equal(sys.up.agent.tls, undefined, "wrenn up's own agent is unchanged (plain, called in process)");
  });

  it('refuses registrations that pin no certificate or another one', async () => {
    const token = await newToken();
    const base = { token, address: extra.agent.url, agent_secret: extra.agent.secret };
    const none = await post(`${sys.url}/v1/hosts/register`, base);
    assert.equal(none.status, 400);
    assert.match(none.body.error!.message, /agent_tls_cert is missing/);
    const plainWithCert = await post(`${sys.url}/v1/hosts/register`, {
      ...base,
      address: extra.agent.url.replace('https:', 'http:'),
      agent_tls_cert: extra.agent.tls!.certPem,
    });
    assert.equal(plainWithCert.status, 400);
    assert.match(plainWithCert.body.error!.message, /is http:\/\//);
    const notPem = await post(`${sys.url}/v1/hosts/register`, { ...base, agent_tls_cert: 'not a certificate' });
    assert.equal(notPem.status, 400);
    // Someone holding a token cannot make the control plane pin a certificate the agent does not serve.
    const other = await post(`${sys.url}/v1/hosts/register`, { ...base, agent_tls_cert: mitm.cert });
    assert.equal(other.status, 400);
    assert.match(other.body.error!.message, /does not serve the certificate sent as agent_tls_cert/);
    // None of these spent the token.
    const reg = await registerWithControlPlane({
      controlPlaneUrl: sys.url,
      token,
      agentUrl: extra.agent.url,
      agentSecret: extra.agent.secret,
      agentTlsCert: extra.agent.tls!.certPem,
      stateFile: stateFile(),
    });
    hostB = reg.hostId;
    assert.equal(hostB, extra.agent.hostId);
    assert.equal(reg.agentCertSha256, extra.agent.tls!.fingerprint256);
    const host = await getHost(dbh(), hostB);
    assert.equal(host?.address, extra.agent.url);
    assert.equal(host?.agentTlsCert, extra.agent.tls!.certPem, 'the control plane keeps the certificate it pins');
  });

  it('creates, execs and moves files through the TLS agent', async () => {
    const round = await new HostMonitor(sys.cp.ctx).checkOnce();
    assert.ok(round.answered.includes(hostB), JSON.stringify(round));
    const made: string[] = [];
    for (let i = 0; i < 2 && !onB; i++) {
      const s = await Sandbox.create('minimal', { ...sys.sdk(), timeoutMs: 600_000 });
      made.push(s.sandboxId);
      if ((await getCapsule(dbh(), s.sandboxId))?.hostId === hostB) onB = s.sandboxId;
    }
    assert.ok(onB, `a capsule lands on the TLS host (least loaded): ${made.join(', ')}`);
    assert.equal(extra.agent.manager.list().length, 1, 'the TLS agent really runs it');
    const sb = await Sandbox.connect(onB, sys.sdk());
    await sb.files.write('/tmp/note', 'over tls');
    assert.equal(await sb.files.read('/tmp/note'), 'over tls');
    const lines: string[] = [];
    const r = await sb.commands.run('for i in 1 2 3; do echo line $i; done; hostname', {
      onStdout: (d) => void lines.push(d),
    });
    assert.equal(r.exitCode, 0);
    assert.match(r.stdout, /line 3/);
    assert.ok(lines.length > 0, 'streamed output arrived');
    for (const id of made) if (id !== onB) await Sandbox.kill(id, sys.sdk());
  });

  it('refuses a man-in-the-middle with another certificate at the same address, and sends it nothing', async () => {
    const port = extra.agent.port;
    const secret = extra.agent.secret;
    await extra.stop();
    const received: Buffer[] = [];
    let handshakes = 0;
    const impostor = tls.createServer({ cert: mitm.cert, key: mitm.key, ALPNProtocols: ['h2', 'http/1.1'] }, (s) => {
      handshakes++;
      s.on('data', (d: Buffer) => received.push(d));
      s.on('error', () => undefined);
    });
    impostor.on('tlsClientError', () => undefined);
    await new Promise<void>((r) => impostor.listen(port, '127.0.0.1', r));
    try {
      const host = (await getHost(dbh(), hostB))!;
      // RPCs (the pooled h2 session is new: the old one went with the agent).
      sys.cp.ctx.agents.forget(hostB);
      await assert.rejects(probeHost(sys.cp.ctx.agents, host, 3_000), (e: Error) => MISMATCH.test(e.message));
      const round = await new HostMonitor(sys.cp.ctx, { timeoutMs: 3_000 }).checkOnce();
      assert.ok(!round.answered.includes(hostB), 'the monitor does not count the impostor as the host');
      // The sandbox proxy: envd's port of the capsule, by header routing.
      const res = await fetch(`${sys.url}/health`, {
        headers: { 'E2b-Sandbox-Id': onB, 'E2b-Sandbox-Port': '49983' },
      });
      assert.equal(res.status, 502);
      assert.match(await res.text(), MISMATCH);
      // Exec through the e2b SDK fails too (through the proxy), rather than reaching the impostor.
      const sb = await Sandbox.connect(onB, sys.sdk());
      await assert.rejects(sb.commands.run('echo hi', { requestTimeoutMs: 10_000 }));
      // A registration naming the real certificate at that address is refused as well.
      const re = await post(`${sys.url}/v1/hosts/register`, {
        token: await newToken(),
        address: host.address,
        agent_secret: secret,
        agent_tls_cert: host.agentTlsCert,
      });
      assert.equal(re.status, 400);
      assert.match(re.body.error!.message, /does not serve the certificate/);
      const all = Buffer.concat(received);
      assert.equal(all.length, 0, `the impostor read nothing (${handshakes} completed handshakes)`);
      assert.ok(!all.includes(secret), 'the agent secret never reached it');
    } finally {
      await new Promise<void>((r) => impostor.close(() => r()));
    }
  });

  it('serves the capsule again once the real agent is back at its address', async () => {
    await extra.restart();
    const round = await new HostMonitor(sys.cp.ctx).checkOnce();
    assert.ok(round.answered.includes(hostB), JSON.stringify(round));
    const sb = await Sandbox.connect(onB, sys.sdk());
    assert.equal(await sb.files.read('/tmp/note'), 'over tls');
    assert.equal((await sb.commands.run('echo back')).stdout, 'back\n');
  });

  it('needs a new registration when the agent certificate changes', async () => {
    await extra.stop();
    rmSync(join(extra.dataDir, AGENT_TLS_DIR), { recursive: true, force: true });
    await extra.restart();
    const fresh = extra.agent.tls!;
    const host = (await getHost(dbh(), hostB))!;
    assert.notEqual(fresh.certPem, host.agentTlsCert, 'a new certificate was made');
    await assert.rejects(probeHost(sys.cp.ctx.agents, host, 3_000), (e: Error) => MISMATCH.test(e.message));
    // The agent notices too: its remembered registration names the old certificate.
    const o = {
      controlPlaneUrl: sys.url,
      agentUrl: extra.agent.url,
      agentSecret: extra.agent.secret,
      agentTlsCert: fresh.certPem,
      stateFile: stateFile(),
    };
    await assert.rejects(
      registerWithControlPlane(o),
      (e: unknown) => e instanceof RegistrationError && /TLS certificate changed .* pass --token/.test(e.message),
    );
    const reg = await registerWithControlPlane({ ...o, token: await newToken() });
    assert.equal(reg.hostId, hostB);
    assert.equal(reg.reused, false);
    const pinned = (await getHost(dbh(), hostB))!;
    assert.equal(pinned.agentTlsCert, fresh.certPem);
    await probeHost(sys.cp.ctx.agents, pinned, 3_000);
    const sb = await Sandbox.connect(onB, sys.sdk());
    assert.equal((await sb.commands.run('cat /tmp/note')).stdout, 'over tls');
    assert.equal(await Sandbox.kill(onB, sys.sdk()), true);
  });
});
