// Shared set-up for the namespace runtime and rootfs tests: a throw-away data dir, a stable
// template cache, a private cgroup parent, bare network namespaces, and a leak check.
//
// Template cache: built templates are kept across test runs in /var/cache/wrenn-test-images
// (override with WRENN_TEST_IMAGES) so `base` (debootstrap, a minute or more) is built once.
// Snapshot templates the tests make there are deleted by the tests.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { removeTree, TemplateStore } from '../src/rootfs/index.js';
import { CONTROLLERS, NamespaceRuntime, type NamespaceRuntimeOptions } from '../src/runtimes/namespace/index.js';
import type { CapsuleSpec } from '../src/runtimes/runtime.js';

export const IMAGES_CACHE = process.env.WRENN_TEST_IMAGES ?? '/var/cache/wrenn-test-images';

export function rand(n = 6): string {
  return randomBytes(8).toString('hex').slice(0, n);
}

export interface Env {
  dataDir: string;
  store: TemplateStore;
  cgroupParent: string;
  runtime(extra?: Partial<NamespaceRuntimeOptions>): NamespaceRuntime;
  netns(): { name: string; path: string };
  /** Fails when anything this environment made is still on the host. */
  leftovers(): string[];
  cleanup(): Promise<void>;
}

/**
 * A stand-in main process for tests that are about limits, not envd: node (through the bound
 * runtime, so the bind mounts are exercised) serving 204 on /health. Starts in ~50 ms where
 * the real envd takes longer.
 */
export function standInEnvd(node: readonly string[]): string[] {
  return [...node, '-e', "require('http').createServer((q,s)=>{s.writeHead(204);s.end()}).listen(49983,'0.0.0.0')"];
}

export function makeEnv(): Env {
  const dataDir = mkdtempSync('/tmp/wrenn-test-');
  const store = new TemplateStore({ imagesDir: IMAGES_CACHE });
  const cgroupParent = `wrenn-test-${rand()}`;
  const netnses: string[] = [];
  const runtimes: NamespaceRuntime[] = [];
  const env: Env = {
    dataDir,
    store,
    cgroupParent,
    runtime: (extra = {}) => {
      const rt = new NamespaceRuntime({ dataDir, templates: store, cgroupParent, ...extra });
      runtimes.push(rt);
      return rt;
    },
    netns() {
      const name = `wrenn-test-${rand()}`;
      execFileSync('ip', ['netns', 'add', name]);
      netnses.push(name);
      return { name, path: `/run/netns/${name}` };
    },
    leftovers() {
      const out: string[] = [];
      for (const c of CONTROLLERS) {
        const tasks = join('/sys/fs/cgroup', c, cgroupParent, 'tasks');
        if (existsSync(tasks) && readFileSync(tasks, 'utf8').trim())
          out.push(`processes in ${tasks}: ${readFileSync(tasks, 'utf8').trim()}`);
      }
      for (const c of CONTROLLERS) {
        const d = join('/sys/fs/cgroup', c, cgroupParent);
        if (existsSync(d)) {
          const kids = readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory());
          if (kids.length) out.push(`cgroups ${kids.map((k) => join(d, k.name)).join(' ')}`);
        }
      }
      const sandboxes = join(dataDir, 'sandboxes');
      if (existsSync(sandboxes) && readdirSync(sandboxes).length)
        out.push(`sandbox dirs ${readdirSync(sandboxes).join(' ')}`);
      const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .filter((l) => l.includes(dataDir));
      if (mounts.length) out.push(`mounts ${mounts.join('; ')}`);
      return out;
    },
    async cleanup() {
      // Best effort, in dependency order: processes and cgroups, then netns, then files.
      const rt = env.runtime();
      await rt.cleanupStale(new Set()).catch((err) => console.error('cleanup:', err));
      for (const c of CONTROLLERS) {
        const dir = join('/sys/fs/cgroup', c, cgroupParent);
        for (let i = 0; i < 200 && existsSync(dir); i++) {
          try {
            rmdirSync(dir);
          } catch {
            await new Promise((r) => setTimeout(r, 10)); // a helper may still be leaving it
          }
        }
      }
      for (const n of netnses) {
        try {
          execFileSync('ip', ['netns', 'delete', n]);
        } catch {
          // already gone
        }
      }
      // Blank-disk refills must not write into the data dir while it goes.
      await Promise.all(runtimes.map((r) => r.close()));
      await removeTree(dataDir);
    },
  };
  return env;
}

export function spec(id: string, template = 'minimal', extra: Partial<CapsuleSpec> = {}): CapsuleSpec {
  return {
    id,
    template,
    vcpus: 1,
    memoryMb: 256,
    envs: {},
    internet: false,
    metadata: { WRENN_SANDBOX_ID: id, WRENN_TEMPLATE_ID: template },
    ...extra,
  };
}
