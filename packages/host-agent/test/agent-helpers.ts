// Test helpers: a real host agent (namespace runtime, real network) on a loopback port with its own
// data dir, network pool and interface names, and a Connect client to it.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@connectrpc/connect';
import type { HostAgentService } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import { type RunningAgent, startAgent } from '../src/agent.js';
import { createAgentClient } from '../src/auth/client.js';
import { createLocalLayers, type LocalLayers } from '../src/local-providers.js';
import type { NetworkOptions } from '../src/network/index.js';

/** Whether QEMU is installed (the QEMU suites skip without it). */
export const hasQemu = ((): boolean => {
  try {
    execFileSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

export interface TestAgent {
  dataDir: string;
  agent: RunningAgent;
  layers: LocalLayers;
  client: Client<typeof HostAgentService>;
  /** Stops the agent process parts; capsules keep running (as on an agent crash). */
  stop(): Promise<void>;
}

export const TEST_NET = {
  pool: '10.214.0.0/20',
  names: { netnsPrefix: 'wra-', ifPrefix: 'wa', chainPrefix: 'WRA' },
  metadataPort: 31250,
};

export function newDataDir(): string {
  return mkdtempSync(join(tmpdir(), 'wrenn-agent-test-'));
}

/** `network`: settings on top of TEST_NET (e.g. egress ranges); `warmPool`: ready capsules per template. */
export async function startTestAgent(
  dataDir: string,
  network: Partial<NetworkOptions> = {},
  opts: { warmPool?: Record<string, number> } = {},
): Promise<TestAgent> {
  const layers = await createLocalLayers(dataDir, {
    network: { ...TEST_NET, ...network },
    cgroupParent: 'wrenn-test-agent',
  });
  const agent = await startAgent({
    ...layers,
    dataDir,
    listen: { host: '127.0.0.1', port: 0 },
    ...(opts.warmPool ? { warmPool: opts.warmPool } : {}),
  });
  const client = createAgentClient(agent.url, agent.secret);
  return {
    dataDir,
    agent,
    layers,
    client,
    async stop() {
      await agent.close();
      await layers.close();
    },
  };
}

/** Destroys every capsule the agent knows, stops it and removes its data dir. */
export async function teardown(t: TestAgent | undefined, dataDir: string): Promise<void> {
  if (t) {
    await t.agent.manager.destroyAll().catch(() => undefined);
    await t.stop().catch(() => undefined);
    // The agent leaves its firewall chains for a restart to reuse; a finished test removes them.
    await t.layers.networkManager.removeAll().catch(() => undefined);
  }
  const mounts = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    .filter((m) => m.startsWith(dataDir));
  for (const m of mounts.reverse()) {
    try {
      execFileSync('umount', ['-l', m]);
    } catch {
      // already gone
    }
  }
  rmSync(dataDir, { recursive: true, force: true });
  for (const ctrl of ['cpu', 'cpuacct', 'memory', 'pids', 'freezer']) {
    try {
      rmdirSync(`/sys/fs/cgroup/${ctrl}/wrenn-test-agent`);
    } catch {
      // not there, shared with cpu, or still used by another agent of this run
    }
  }
}

/** What of ours is still on the host: namespaces, veths, iptables chains, cgroups, mounts. */
export function leftovers(dataDir: string, capsuleIds: string[]): string[] {
  const out: string[] = [];
  const netns = existsSync('/run/netns') ? readdirSync('/run/netns') : [];
  for (const n of netns) if (n.startsWith(TEST_NET.names.netnsPrefix)) out.push(`netns ${n}`);
  const links = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' });
  for (const l of links.split('\n')) {
    const name = l.split(':')[1]?.trim().split('@')[0];
    if (name && new RegExp(`^${TEST_NET.names.ifPrefix}\\d+$`).test(name)) out.push(`link ${name}`);
  }
  for (const ctrl of ['cpu', 'memory', 'pids', 'freezer']) {
    for (const id of capsuleIds)
      if (existsSync(`/sys/fs/cgroup/${ctrl}/wrenn-test-agent/${id}`))
        out.push(`cgroup ${ctrl}/wrenn-test-agent/${id}`);
    // Any capsule group left under the test agents' parent (warm-pool capsules have ids of their own).
    const parent = `/sys/fs/cgroup/${ctrl}/wrenn-test-agent`;
    if (existsSync(parent))
      for (const d of readdirSync(parent, { withFileTypes: true }))
        if (d.isDirectory()) out.push(`cgroup ${ctrl}/wrenn-test-agent/${d.name}`);
  }
  for (const m of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const target = m.split(' ')[1] ?? '';
    if (target.startsWith(dataDir)) out.push(`mount ${target}`);
  }
  for (const n of execFileSync('ipset', ['list', '-n'], { encoding: 'utf8' }).split('\n')) {
    if (n.startsWith(`${TEST_NET.names.chainPrefix}-`)) out.push(`ipset ${n}`);
  }
  for (const table of ['filter', 'nat']) {
    try {
      const rules = execFileSync('iptables', ['-t', table, '-S'], { encoding: 'utf8' });
      for (const line of rules.split('\n'))
        if (line.startsWith(`-N ${TEST_NET.names.chainPrefix}-`)) out.push(`iptables ${table} chain ${line.slice(3)}`);
      for (const id of capsuleIds) if (rules.includes(id)) out.push(`iptables ${table} rule for ${id}`);
    } catch {
      // iptables missing: nothing of ours there
    }
  }
  return out;
}

export const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
