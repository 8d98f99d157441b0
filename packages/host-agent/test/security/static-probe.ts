// Hostile probes that need a system call busybox has no command for (pidfd_getfd, ...): a small C
// program compiled statically on the host with gcc and copied into a capsule, where it runs as any
// program a tenant brings would.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execInCapsule } from '../../src/runtimes/namespace/index.js';
import type { RuntimeHandle } from '../../src/runtimes/runtime.js';

/**
 * Compiles the C file `src` into the static binary `out` (static, so it runs in any template);
 * throws with gcc's message and what to install when this machine cannot.
 */
export function compileStaticFile(src: string, out: string): void {
  try {
    execFileSync('gcc', ['-static', '-O2', '-Wall', '-o', out, src], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(
      `compiling the probe ${src} needs gcc and a static libc (apt-get install gcc libc6-dev): ${stderr || String(err)}`,
    );
  }
}

/** Compiles `source` (C) into a static binary and returns its bytes. */
export function compileStatic(source: string): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'wrenn-probe-'));
  try {
    writeFileSync(join(dir, 'probe.c'), source);
    compileStaticFile(join(dir, 'probe.c'), join(dir, 'probe'));
    return readFileSync(join(dir, 'probe'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Writes `binary` into the running capsule at `dest` (mode 0755, owned by root inside). */
export async function installInCapsule(h: RuntimeHandle, binary: Buffer, dest: string): Promise<void> {
  const r = await execInCapsule(h, ['/bin/sh', '-c', `base64 -d > ${dest} && chmod 755 ${dest}`], {
    input: binary.toString('base64'),
    timeoutMs: 30_000,
  });
  if (r.code !== 0) throw new Error(`copying a probe into ${h.id} failed: ${r.stderr}`);
}
