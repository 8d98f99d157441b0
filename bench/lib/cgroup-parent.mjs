// Benchmarks run agents under a cgroup parent of their own (or the default `wrenn`); once their
// capsules are gone the parent is empty and is removed, so a benchmark leaves no cgroup behind.
// rmdir fails on a parent that still holds capsules (e.g. a running `wrenn up`): it stays.
import { rmdirSync } from 'node:fs';
import { join } from 'node:path';

const CONTROLLERS = ['cpu', 'cpuacct', 'memory', 'pids', 'freezer'];

export function removeCgroupParent(name) {
  for (const c of CONTROLLERS) {
    try {
      rmdirSync(join('/sys/fs/cgroup', c, name));
    } catch {
      // not made under this controller, already gone, or not empty
    }
  }
}
