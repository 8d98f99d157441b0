// COPY --from: files move out of a stage (or template) into the build capsule as a tar stream made
// by `tar` inside a capsule of that stage and unpacked by `tar` inside the build capsule, so owners,
// modes and symlinks are kept, and every path (the source, and any symlink it is or passes
// through) is resolved inside the stage's own root: the host and the agent's files are not in
// that capsule's view at all. A source that is a symlink is followed (as Docker does) within that
// root; symlinks inside a copied directory are copied as symlinks.
import { posix } from 'node:path';
import { messageOf } from '@wrenn/protocol';
import type { ControlPlaneContext } from '../context.js';
import { agentForCapsule, type Capsule } from '../services/capsules.js';

/** Largest tar a single COPY --from source may make (it passes through the control plane's memory). */
export const COPY_FROM_MAX_BYTES = 512 * 1024 * 1024;

/** Exit code of the source script when the path does not exist in the stage. */
const MISSING = 3;

/**
 * Runs in the source capsule as root with the path as $1: writes the kind ("dir" or "file") to
 * stderr and a tar of the directory's contents, or of the one file/symlink/device, to stdout.
 */
const SOURCE_SCRIPT = `
p=$(readlink -f -- "$1" 2>/dev/null) || p=
if [ -z "$p" ] || ! [ -e "$p" ]; then echo "no such file or directory" >&2; exit ${MISSING}; fi
if [ -d "$p" ]; then cd "$p" && set -- . && echo dir >&2
else cd "$(dirname -- "$p")" && set -- "./$(basename -- "$p")" && echo file >&2; fi
if tar --version 2>/dev/null | grep -q GNU; then exec tar --numeric-owner --one-file-system -cf - "$@"; fi
exec tar -cf - "$@"
`;

/**
 * Runs in the source capsule as root: prints, NUL-separated, the paths the wildcard pattern $1
 * matches there (IFS empty: the pattern is globbed, never split).
 */
const GLOB_SCRIPT = `
IFS=''
for f in $1; do if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\\0' "$f"; fi; done
`;

/**
 * Runs in the build capsule as root, the tar on stdin. Directory source ($2 = dir): unpacked into
 * $1, whose own owner and mode stay as they were when it existed. File source ($2 = file):
 * unpacked next to the destination and renamed onto it (into it when $1 is a directory).
 */
const TARGET_SCRIPT = `
set -e
dest=$1
if [ "$2" = dir ]; then
  if [ -d "$dest" ]; then keep=$(stat -c '%u:%g %a' "$dest"); else keep=; fi
  mkdir -p -- "$dest"
  tar --numeric-owner -xpf - -C "$dest"
  if [ -n "$keep" ]; then chown "\${keep% *}" "$dest"; chmod "\${keep#* }" "$dest"; fi
else
  mkdir -p -- "$(dirname -- "$dest")"
  t=$(mktemp -d "$(dirname -- "$dest")/.wrenn-copy.XXXXXX")
  tar --numeric-owner -xpf - -C "$t"
  for e in "$t"/* "$t"/.[!.]* "$t"/..?*; do
    if [ -e "$e" ] || [ -L "$e" ]; then mv -f -- "$e" "$dest"; fi
  done
  rmdir -- "$t"
fi
`;

export class CopyFromError extends Error {}

/** An exec request running argv as root in `c` from /, with `stdin`. */
const rootExec = (c: Capsule, argv: string[], stdin: Uint8Array = new Uint8Array()) => ({
  capsuleId: c.id,
  cmd: argv[0]!,
  args: argv.slice(1),
  envs: {},
  cwd: '/',
  user: 'root',
  stdin,
  timeoutSec: 3600,
  tag: '',
});

export interface CopyFromPlan {
  /** Source paths inside the stage (already substituted), absolute or relative to its root. */
  sources: string[];
  /** The destination, absolute, already substituted and joined to WORKDIR. */
  dest: string;
  /** The destination is a directory to copy into (it ends with '/', there are several sources or a wildcard). */
  intoDir: boolean;
  /** What the error messages call the stage ("stage build", "template tools"). */
  label: string;
}

/** Copies the plan's sources out of `source` into `target`; returns the paths written at the destination (for --chown/--chmod). */
export async function copyBetweenCapsules(
  ctx: ControlPlaneContext,
  source: Capsule,
  target: Capsule,
  plan: CopyFromPlan,
): Promise<string[]> {
  const from = await agentForCapsule(ctx, source);
  const to = await agentForCapsule(ctx, target);
  const written: string[] = [];
  const sources: string[] = [];
  for (const src of plan.sources) {
    if (!/[*?[]/.test(src)) {
      sources.push(posix.join('/', src));
      continue;
    }
    const matches = await from
      .exec(rootExec(source, ['/bin/sh', '-c', GLOB_SCRIPT, 'wrenn-copy-glob', posix.join('/', src)]))
      .catch((err: unknown) => {
        throw new CopyFromError(`matching '${src}' in ${plan.label} failed: ${messageOf(err)}`);
      });
    const found = Buffer.from(matches.stdout).toString('utf8').split('\0').filter(Boolean).sort();
    if (found.length === 0) throw new CopyFromError(`'${src}' matches nothing in ${plan.label}`);
    sources.push(...found);
  }
  for (const src of sources) {
    const abs = src;
    const out = await from
      .exec(rootExec(source, ['/bin/sh', '-c', SOURCE_SCRIPT, 'wrenn-copy-out', abs]))
      .catch((err: unknown) => {
        throw new CopyFromError(`reading '${src}' from ${plan.label} failed: ${messageOf(err)}`);
      });
    const stderr = Buffer.from(out.stderr).toString('utf8');
    if (out.exitCode === MISSING) throw new CopyFromError(`'${src}' does not exist in ${plan.label}`);
    const kind = /^(dir|file)$/m.exec(stderr)?.[1];
    if (out.exitCode !== 0 || !kind)
      throw new CopyFromError(
        `reading '${src}' from ${plan.label} failed (exit code ${out.exitCode}): ${stderr.trim().slice(-500)}`,
      );
    if (out.stdout.length > COPY_FROM_MAX_BYTES)
      throw new CopyFromError(
        `'${src}' in ${plan.label} is over ${COPY_FROM_MAX_BYTES} bytes as a tar; copy less at once`,
      );
    const dest = kind === 'file' && plan.intoDir ? posix.join(plan.dest, posix.basename(abs)) : plan.dest;
    const res = await to
      .exec(rootExec(target, ['/bin/sh', '-c', TARGET_SCRIPT, 'wrenn-copy-in', dest, kind], out.stdout))
      .catch((err: unknown) => {
        throw new CopyFromError(`writing '${dest}' failed: ${messageOf(err)}`);
      });
    if (res.exitCode !== 0)
      throw new CopyFromError(
        `writing '${dest}' failed (exit code ${res.exitCode}): ${Buffer.from(res.stderr).toString('utf8').trim().slice(-500)}`,
      );
    written.push(dest);
  }
  return written;
}
