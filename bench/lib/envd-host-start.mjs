// What the benches that compare envd's start across Node lines share (envd-snapshot,
// capsule-envd-lines): which lines (the machine's node, then .ci/node-lines or the versions given)
// and one start of envd on the host as a capsule's init starts it (no flags, a ready pipe as fd 3),
// timed to "ready" with the CPU of all its threads until then; and envd's bundle made by a line's
// node (its V8 code cache is only good for that node).
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeLine } from '../../scripts/node-line.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** [{ version, node }]: the machine's node first, then each of `versions` (default .ci/node-lines). */
export function benchNodeLines(versions = []) {
  const others = versions.length
    ? versions
    : readFileSync(join(root, '.ci/node-lines'), 'utf8')
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith('#'));
  return [
    { version: process.versions.node, node: process.execPath },
    ...others.map((v) => ({ version: v, node: nodeLine(v) })),
  ];
}

/** The envd bundle (scripts/bundle-envd.mjs) made by `node` into `outDir`; returns outDir. */
export function bundleWith(node, outDir) {
  const env = { ...process.env, PATH: `${dirname(node)}:${process.env.PATH}`, WRENN_ENVD_BUNDLE_OUT: outDir };
  delete env.NODE_OPTIONS;
  execFileSync(node, [join(root, 'scripts/bundle-envd.mjs')], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  return outDir;
}

/**
 * Starts envd (`args`: node's arguments up to and including the entry) with `node` on 127.0.0.1, any
 * port, in a capsule's environment (plus `extraEnv`). Resolves once it said ready: { child, port, readyMs, cpuMs, stderr() }; the caller kills it.
 */
export async function startEnvdOnHost(node, args, what = node, extraEnv = {}) {
  const t0 = performance.now();
  const child = spawn(node, [...args, '--port', '0', '--host', '127.0.0.1'], {
    env: { PATH: '/usr/bin:/bin', HOME: '/root', LANG: 'C.UTF-8', WRENN_READY_FD: '3', ...extraEnv },
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  try {
    await new Promise((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`envd (${what}) not ready in 15 s: ${stderr}`)), 15_000);
      child.stdio[3].once('data', () => (clearTimeout(timer), ok()));
      child.once('exit', (code) => (clearTimeout(timer), fail(new Error(`envd (${what}) exited ${code}: ${stderr}`))));
    });
    const readyMs = performance.now() - t0;
    let cpuNs = 0;
    for (const task of readdirSync(`/proc/${child.pid}/task`))
      cpuNs += Number(readFileSync(`/proc/${child.pid}/task/${task}/schedstat`, 'utf8').split(' ')[0]);
    if (/code cache rejected/.test(stderr)) throw new Error(`envd (${what}) rejected its code cache`);
    // The "listening" line comes just before "ready"; wait for it if the pipe was faster.
    for (let i = 0; i < 100 && !/"port":\d+/.test(stderr); i++) await new Promise((r) => setTimeout(r, 10));
    const port = Number(/"msg":"envd listening","port":(\d+)/.exec(stderr)?.[1]);
    return { child, port, readyMs, cpuMs: cpuNs / 1e6, stderr: () => stderr };
  } catch (err) {
    await stopEnvd(child);
    throw err;
  }
}

/** SIGKILL, and wait for the exit. */
export async function stopEnvd(child) {
  child.kill('SIGKILL');
  if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once('exit', r));
}
