#!/usr/bin/env node
// The Wrenn stack of bench/density in processes of its own, so the bench's own HTTP client and
// sampling stay out of the stack's CPU and RSS figures. Two shapes, each with its own cgroup
// parent, address pool and interface names, under the data dir it is given:
// - `wrenn up` (default): control plane, local host agent and embedded SQLite in this process;
// - split (`split: true`): this process is the control plane (`wrenn server`), and a child of it
//   (this file with `--agent`) is the host agent (`wrenn agent`), registered with a one-time
//   token and called over HTTP/2 as a remote host is, so each one's RSS and CPU can be read.
// Prints one JSON line {url, adminKey, pid, agentPid?, cgroupParent} on stdout when ready.
// It tears everything down (every capsule destroyed, networks, cgroup parent, mounts, data dir) on
// SIGTERM, SIGINT or when its stdin closes (the bench died); `--cleanup` starts on a data dir left
// by a stack that crashed, takes its capsules back and tears them down the same way.
// Usage (by bench/density.mjs): node bench/lib/density-stack.mjs '<json options>' [--cleanup | --agent]
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { removeCgroupParent } from './cgroup-parent.mjs';

const DENSITY_CGROUP_PARENT = 'wrenn-bench-density';
const DENSITY_NETWORK = {
  // 4,096 /30 slots: room for 1,000 capsules and their warm networks.
  pool: '10.232.0.0/18',
  names: { netnsPrefix: 'wrd-', ifPrefix: 'wd', chainPrefix: 'WRD' },
  metadataPort: 31280,
};

const log = (line) => process.stderr.write(`[density-stack] ${line}\n`);
const o = JSON.parse(process.argv[2] ?? '{}');
const cleanupOnly = process.argv.includes('--cleanup');
if (!o.dataDir) throw new Error('density-stack: options need dataDir');
const agentDir = o.split ? join(o.dataDir, 'agent') : o.dataDir;

/** Destroys every capsule of the agent (in batches) and removes what it made on the host. */
async function tearDownAgent(manager, close, networkManager) {
  const ids = manager.list().map((r) => r.id);
  log(`stopping: destroying ${ids.length} capsules`);
  // In batches: a thousand destroys at once would each hold netns, mount and cgroup work.
  for (let i = 0; i < ids.length; i += 20) {
    await Promise.all(ids.slice(i, i + 20).map((id) => manager.destroy(id).catch(() => undefined)));
    if (i % 200 === 0 && i) log(`  ${i}/${ids.length} destroyed`);
  }
  await manager.destroyAll().catch(() => undefined); // warm-pool capsules made meanwhile
  await close().catch((err) => log(`close: ${err?.message ?? err}`));
  await networkManager.removeAll().catch(() => undefined);
  removeCgroupParent(DENSITY_CGROUP_PARENT);
  try {
    execFileSync('sh', [
      '-c',
      `grep ' ${o.dataDir}' /proc/self/mounts | cut -d' ' -f2 | sort -r | xargs -r -n1 umount -l`,
    ]);
  } catch {
    // nothing mounted
  }
}

/** Runs `stop` once on SIGTERM, SIGINT or the end of stdin (the parent died). */
function stopOnSignals(stop) {
  let stopping = false;
  const once = () => {
    if (stopping) return;
    stopping = true;
    void stop().then(
      () => process.exit(0),
      (err) => {
        log(`stop failed: ${err?.stack ?? err}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', once);
  process.on('SIGINT', once);
  process.stdin.on('end', once);
  process.stdin.on('error', once);
  process.stdin.resume();
}

async function runUp() {
  const { startUp } = await import('@wrenn/cli');
  const up = await startUp({
    dataDir: o.dataDir,
    listen: { host: '127.0.0.1', port: 0 },
    domain: 'localhost',
    logLevel: o.logLevel ?? 'warn',
    cgroupParent: DENSITY_CGROUP_PARENT,
    network: DENSITY_NETWORK,
    ...(o.imagesDir ? { imagesDir: o.imagesDir } : {}),
    ...(o.warmPool && !cleanupOnly ? { warmPool: { [o.template ?? 'minimal']: o.warmPool } } : {}),
    warmMinimal: !cleanupOnly,
    onProgress: (line) => log(line),
  });
  const stop = async () => {
    await tearDownAgent(up.agent.manager, () => up.close(), up.layers.networkManager);
    rmSync(o.dataDir, { recursive: true, force: true });
    log('stopped, nothing left');
  };
  if (cleanupOnly) return stop().then(() => process.exit(0));
  stopOnSignals(stop);
  ready({ url: up.url, adminKey: up.adminKey, pid: process.pid });
}

/** `wrenn agent`: registers with the control plane at o.controlPlaneUrl with o.token. */
async function runAgent() {
  const { createLocalLayers } = await import('../../packages/host-agent/dist/src/local-providers.js');
  const { startAgent } = await import('../../packages/host-agent/dist/src/agent.js');
  const { agentNetWarmPool } = await import('../../packages/host-agent/dist/src/network/index.js');
  const { registerWithControlPlane } = await import('@wrenn/host-agent');
  mkdirSync(agentDir, { recursive: true });
  const layers = await createLocalLayers(agentDir, {
    network: { ...DENSITY_NETWORK, warmPool: agentNetWarmPool() },
    cgroupParent: DENSITY_CGROUP_PARENT,
    ...(o.imagesDir ? { imagesDir: o.imagesDir } : {}),
  });
  const agent = await startAgent({
    ...layers,
    dataDir: agentDir,
    listen: { host: '127.0.0.1', port: 0 },
    ...(o.warmPool && !cleanupOnly ? { warmPool: { [o.template ?? 'minimal']: o.warmPool } } : {}),
  });
  const stop = async () => {
    await tearDownAgent(agent.manager, () => agent.close().then(() => layers.close()), layers.networkManager);
    log('agent stopped');
  };
  if (cleanupOnly) return stop().then(() => process.exit(0));
  stopOnSignals(stop);
  await layers.templates.ensure(o.template ?? 'minimal', (line) => log(line));
  await registerWithControlPlane({
    controlPlaneUrl: o.controlPlaneUrl,
    agentUrl: agent.url,
    agentSecret: agent.secret,
    hostId: agent.hostId,
    runtimes: agent.manager.runtimeNames(),
    stateFile: join(agentDir, 'registration.json'),
    token: o.token,
  });
  ready({ pid: process.pid });
}

/** `wrenn server` here, and the agent in a child process registered with it. */
async function runSplit() {
  if (cleanupOnly) {
    await spawnAgent({}, ['--agent', '--cleanup']).exited;
    rmSync(o.dataDir, { recursive: true, force: true });
    return process.exit(0);
  }
  const { startControlPlane } = await import('../../packages/control-plane/dist/src/server.js');
  const { ensureAdmin } = await import('../../packages/control-plane/dist/src/auth/index.js');
  const cpDir = join(o.dataDir, 'cp');
  mkdirSync(cpDir, { recursive: true });
  const cp = await startControlPlane({
    listen: { host: '127.0.0.1', port: 0 },
    dataDir: cpDir,
    domain: 'localhost',
    publicUrl: 'http://127.0.0.1:0',
    logLevel: o.logLevel ?? 'warn',
  });
  cp.ctx.config.publicUrl = cp.url;
  const admin = await ensureAdmin({ db: cp.ctx.database.db, dataDir: cpDir });
  let agent;
  const stop = async () => {
    if (agent) {
      agent.child.kill('SIGTERM');
      await agent.exited;
    }
    await cp.close().catch((err) => log(`close: ${err?.message ?? err}`));
    rmSync(o.dataDir, { recursive: true, force: true });
    log('stopped, nothing left');
  };
  stopOnSignals(stop);
  const res = await fetch(`${cp.url}/v1/hosts/tokens`, {
    method: 'POST',
    headers: { 'x-api-key': admin.apiKey, 'content-type': 'application/json' },
    body: '{}',
  });
  if (!res.ok) throw new Error(`POST /v1/hosts/tokens: ${res.status} ${await res.text()}`);
  const { token } = await res.json();
  agent = spawnAgent({ controlPlaneUrl: cp.url, token });
  const agentReady = await agent.ready;
  ready({ url: cp.url, adminKey: admin.apiKey, pid: process.pid, agentPid: agentReady.pid });
}

function spawnAgent(extra, flags = ['--agent']) {
  const child = spawn(
    process.execPath,
    [...process.execArgv, process.argv[1], JSON.stringify({ ...o, ...extra }), ...flags],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const ready = new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', (line) => resolve(JSON.parse(line)));
    void exited.then(({ code, signal }) =>
      reject(new Error(`the agent exited (${signal ?? code}) before it was ready`)),
    );
  });
  ready.catch(() => undefined);
  return { child, exited, ready };
}

function ready(info) {
  process.stdout.write(`${JSON.stringify({ ...info, cgroupParent: DENSITY_CGROUP_PARENT })}\n`);
}

const role = process.argv.includes('--agent') ? 'agent' : o.split ? 'split' : 'up';
const run = role === 'agent' ? runAgent : role === 'split' ? runSplit : runUp;
run().catch((err) => {
  log(`failed: ${err?.stack ?? err}`);
  process.exit(1);
});
