// What the egress policy suites share (security/egress-policy, security/egress-relay): a network
// manager on the test pool whose name server and "internet" are the test's own (198.18.7.0/24,
// @wrenn/host-agent/testing/egress), its egress proxy with an egress CA, capsule networks that are
// destroyed after the file, and the check that nothing is left behind even when a test failed.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import type { EgressProxy } from '../../src/network/egress-proxy/server.js';
import { loadEgressCa, NetworkManager } from '../../src/network/index.js';
import {
  createInternet,
  INET,
  type Internet,
  internetLeftovers,
  removeInternet,
} from '../../src/testing/egress-internet.js';
import { freePort, killChildren, leftovers, TEST_NAMES, TEST_POOL } from '../network-helpers.js';

export const isRoot = process.getuid?.() === 0;
export const rootOnly = { skip: isRoot ? false : 'needs root (namespaces, veth, iptables)' };

export interface EgressSuite {
  m: NetworkManager;
  inet: Internet;
  proxy: EgressProxy;
  /** The internet's CA and the egress CA in one file: what a capsule with rules trusts. */
  bothCas: string;
  /** A capsule network with internet on and `policy`, destroyed after the file. */
  capsule(policy?: {
    allowOut?: string[];
    denyOut?: string[];
    rules?: Record<string, unknown>;
  }): ReturnType<NetworkManager['create']>;
}

/** Registers the file's before/after hooks; the returned fields are set once before() ran. */
export function egressSuite(name: string): EgressSuite {
  const s = {} as EgressSuite;
  let dataDir = '';
  let seq = 0;
  const created: string[] = [];
  const newManager = (metadataPort: number) =>
    new NetworkManager({
      dataDir,
      pool: TEST_POOL,
      names: TEST_NAMES,
      metadataPort,
      dnsServers: [INET.dns],
      egressAllow: [INET.range], // the test's "internet": open like global addresses
    });
  s.capsule = async (policy = {}) => {
    const id = `cl-${name}-${++seq}`;
    created.push(id);
    return s.m.create({ id, internet: true, ...(policy as object) });
  };
  before(async () => {
    if (!isRoot) return;
    dataDir = await mkdtemp(join(tmpdir(), `wrenn-egress-${name}-`));
    s.m = newManager(await freePort());
    await s.m.removeAll(); // whatever an earlier, killed run left
    s.m = newManager(s.m.metadataPort);
    await s.m.init();
    s.inet = await createInternet();
    const ca = await loadEgressCa(dataDir);
    s.proxy = await s.m.startEgressProxy({ upstreamCa: [s.inet.caPem], ca });
    s.bothCas = join(dataDir, 'both-cas.pem');
    await writeFile(s.bothCas, `${s.inet.caPem}\n${ca.certPem}`);
  });
  after(async () => {
    if (!isRoot) return;
    killChildren();
    for (const id of created) await s.m?.destroy(id).catch(() => undefined);
    await s.proxy?.close();
    await s.inet?.stop();
    await removeInternet();
    await s.m?.removeAll().catch((e) => console.error('network cleanup:', e));
    const left = [...(await leftovers(join(dataDir, 'network', 'slots'))), ...internetLeftovers()];
    await rm(dataDir, { recursive: true, force: true });
    assert.deepEqual(left, [], 'the suite left networking state behind');
  });
  return s;
}
