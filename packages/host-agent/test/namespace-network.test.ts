// The namespace runtime composed with the real capsule network module, the way the manager uses
// them: network first (netns + veth + firewall), then runtime.create with spec.network; the host
// reaches envd at capsuleIp:49983 and the capsule reaches the metadata endpoint. Uses its own
// names, pool and chains so it cannot touch an agent or another suite on this machine.

import assert from 'node:assert/strict';
import http from 'node:http';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { type MetadataServer, NetworkManager, startMetadataHttpServer } from '../src/network/index.js';
import { execInCapsule } from '../src/runtimes/namespace/index.js';
import type { RuntimeHandle } from '../src/runtimes/runtime.js';
import { makeEnv, rand, spec } from './namespace-fixtures.js';
import { freePort } from './network-helpers.js';

const env = makeEnv();
const names = { netnsPrefix: 'wrnn-', ifPrefix: 'wq', chainPrefix: 'WRNN' };
let net: NetworkManager | undefined;
let metadata: MetadataServer | undefined;

after(async () => {
  await metadata?.close();
  await net?.removeAll().catch((err) => console.error('network cleanup', err));
  const left = env.leftovers();
  await env.cleanup();
  assert.deepEqual(left, []);
});

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false, timeout: 3000 }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

test('network module + namespace runtime: host reaches envd at the capsule address; metadata answers inside', async (t) => {
  net = new NetworkManager({
    dataDir: join(env.dataDir, 'net'),
    pool: '10.224.0.0/24',
    names,
    metadataPort: await freePort(),
  });
  await net.init();
  metadata = await startMetadataHttpServer({
    port: net.metadataPort,
    host: '0.0.0.0',
    lookup: (addr) => net?.metadataFor(addr),
  });
  const id = `cl-t${rand()}`;
  const n = await net.create({ id, internet: false, metadata: { WRENN_SANDBOX_ID: id, WRENN_TEMPLATE_ID: 'minimal' } });
  t.after(() => net?.destroy(id));
  const rt = env.runtime({ hostHealthCheck: true });
  let h: RuntimeHandle | undefined;
  t.after(async () => {
    if (h) await rt.destroy(h);
  });
  h = await rt.create(spec(id, 'minimal', { network: { netnsPath: n.netnsPath, capsuleIp: n.capsuleIp } }));
  console.log(
    `# created with network in ${rt.lastCreateTimings?.total.toFixed(0)} ms (host-side /health check ${rt.lastCreateTimings?.hostHealth.toFixed(1)} ms)`,
  );
  assert.equal(h.address, n.capsuleIp);
  const health = await get(`http://${n.capsuleIp}:49983/health`);
  assert.equal(health.status, 204);
  const addr = await execInCapsule(h, ['sh', '-c', 'ip -4 -o addr show | grep -v " lo " | head -1']);
  assert.match(addr.stdout, new RegExp(`inet ${n.capsuleIp.replace(/\./g, '\\.')}/`));
  const md = await execInCapsule(
    h,
    ['sh', '-c', 'wget -q -O - http://169.254.169.254/WRENN_SANDBOX_ID || wget -q -O - http://169.254.169.254/'],
    { timeoutMs: 10_000 },
  );
  assert.match(md.stdout, new RegExp(id), `metadata endpoint answered: ${md.stdout} ${md.stderr}`);
  // A server root starts on a low port inside is reachable from the host (unprivileged port start = 0).
  const srv = await execInCapsule(h, [
    'sh',
    '-c',
    'mkdir -p /www && echo hi-from-80 > /www/index.html && httpd -p 80 -h /www && echo started',
  ]);
  assert.equal(srv.stdout.trim(), 'started', srv.stderr);
  const page = await get(`http://${n.capsuleIp}:80/index.html`);
  assert.equal(page.body, 'hi-from-80\n');
});
