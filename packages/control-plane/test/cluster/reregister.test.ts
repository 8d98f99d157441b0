// An agent that registers again (here: restarted with a new TLS certificate, so its capsules are
// reached on the same address with another pinned certificate) is reached from every replica at
// once: the replica that took the registration announces the host on PostgreSQL (NOTIFY), and the
// others drop their cached routes to that host's capsules before the registration is answered,
// instead of keeping the old certificate for up to the cache's 5 s. Checked through the replica
// that did not take the registration, right after it: the sandbox proxy (envd's /health through
// the agent's /proxy hop) and a command through the API.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type Cluster, startCluster } from './fixture.js';

let c: Cluster;
before(async () => {
  c = await startCluster({ replicas: 2, agents: 1 });
});
after(async () => {
  await c?.stop();
});

async function call(base: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { 'x-api-key': c.adminKey, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, text, json: (text.startsWith('{') ? JSON.parse(text) : {}) as Record<string, unknown> };
}

async function reached(base: string, id: string, word: string): Promise<void> {
  const health = await call(base, 'GET', `/proxy/${id}/49983/health`);
  assert.ok(health.status >= 200 && health.status < 300, `proxy via ${base}: ${health.status} ${health.text}`);
  const ex = await call(base, 'POST', `/v1/capsules/${id}/exec`, { cmd: `echo ${word}` });
  assert.equal(ex.status, 200, `exec via ${base}: ${ex.text}`);
  assert.equal(ex.json.stdout, `${word}\n`);
}

test('a re-registered agent (new certificate) is reached through the other replica at once', async () => {
  const [r0, r1] = c.replicas;
  const agent = c.agents[0];
  assert.ok(r0 && r1 && agent);
  const made = await call(r0.url, 'POST', '/v1/capsules', { template: 'minimal', timeout_sec: 600 });
  assert.equal(made.status, 201, made.text);
  const id = made.json.id as string;
  try {
    // Replica 1 now has the route (with the first certificate) in its cache.
    await reached(r1.url, id, 'before');

    const oldCert = agent.tlsCert;
    await agent.kill('SIGTERM');
    rmSync(join(agent.dataDir, 'agent-tls'), { recursive: true, force: true });
    await agent.start();
    assert.ok(agent.tlsCert && agent.tlsCert !== oldCert, 'the agent made a new certificate');
    const token = await call(r0.url, 'POST', '/v1/hosts/tokens', {});
    assert.equal(token.status, 201, token.text);
    const reg = await call(r0.url, 'POST', '/v1/hosts/register', {
      token: token.json.token,
      address: agent.address,
      agent_secret: agent.secret,
      agent_tls_cert: agent.tlsCert,
    });
    assert.equal(reg.status, 201, reg.text);

    // No wait: the replica that did not take the registration already uses the new certificate.
    await reached(r1.url, id, 'after');
  } finally {
    await call(r0.url, 'DELETE', `/v1/capsules/${id}`).catch(() => undefined);
  }
});
