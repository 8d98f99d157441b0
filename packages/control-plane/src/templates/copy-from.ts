// COPY --from: files move out of a stage (or template) into the build capsule as a tar stream made
// by `tar` inside a capsule of that stage and unpacked by `tar` inside the build capsule, so owners,
// modes and symlinks are kept, and every path (the source, and any symlink it is or passes
// through) is resolved inside the stage's own root: the host and the agent's files are not in
// that capsule's view at all. A source that is a symlink is followed (as Docker does) within that
// root; symlinks inside a copied directory are copied as symlinks. The tar streams through the
// control plane chunk by chunk (the source's output paced by the target's input), never whole.
import { posix } from 'node:path';
import { messageOf } from '@wrenn/protocol';
import type { ControlPlaneContext } from '../context.js';
import { agentForCapsule, type Capsule } from '../services/capsules.js';

/** Exit code of the source script when the path does not exist in the stage. */
const MISSING = 3;

/**
 * Runs in the source capsule as root with the path as $1. With $2 = probe it prints the kind
 * ("dir" or "file"); with $2 = tar it writes a tar of the directory's contents, or of the one
 * file/symlink/device, to stdout.
 */
const SOURCE_SCRIPT = `
p=$(readlink -f -- "$1" 2>/dev/null) || p=
if [ -z "$p" ] || ! [ -e "$p" ]; then echo "no such file or directory" >&2; exit ${MISSING}; fi
if [ -d "$p" ]; then kind=dir; else kind=file; fi
if [ "$2" = probe ]; then echo "$kind"; exit 0; fi
if [ "$kind" = dir ]; then cd "$p" && set -- .; else cd "$(dirname -- "$p")" && set -- "./$(basename -- "$p")"; fi
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
 * unpacked next to the destination and renamed onto it (into it when $1 is a directory). On any
 * failure the rest of stdin is read, so the process lives until its input ends and its exit
 * status is there for whoever asks.
 */
const TARGET_SCRIPT = `
set -e
trap 'cat > /dev/null' EXIT
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

/** An exec request running argv as root in `c` from /. */
const rootExec = (c: Capsule, argv: string[]) => ({
  capsuleId: c.id,
  cmd: argv[0]!,
  args: argv.slice(1),
  envs: {},
  cwd: '/',
  user: 'root',
  stdin: new Uint8Array(),
  timeoutSec: 3600,
  tag: '',
});

export interface CopyFromPlan {
  /** Source paths inside the stage (already substituted), absolute or relative to its root; wildcards allowed. */
  sources: string[];
  /** The destination, absolute, already substituted and joined to WORKDIR. */
  dest: string;
  /** The destination is a directory to copy into (it ends with '/', there are several sources or a wildcard). */
  intoDir: boolean;
  /** What the error messages call the stage ("stage build", "template tools"). */
  label: string;
}

type Agent = Awaited<ReturnType<typeof agentForCapsule>>;

/** The paths of the stage the plan's sources name, wildcards expanded inside the stage. */
async function expandSources(from: Agent, source: Capsule, plan: CopyFromPlan): Promise<string[]> {
  const out: string[] = [];
  for (const src of plan.sources) {
    const abs = posix.join('/', src);
    if (!/[*?[]/.test(src)) {
      out.push(abs);
      continue;
    }
    const matches = await from
      .exec(rootExec(source, ['/bin/sh', '-c', GLOB_SCRIPT, 'wrenn-copy-glob', abs]))
      .catch((err: unknown) => {
        throw new CopyFromError(`matching '${src}' in ${plan.label} failed: ${messageOf(err)}`);
      });
    const found = Buffer.from(matches.stdout).toString('utf8').split('\0').filter(Boolean).sort();
    if (found.length === 0) throw new CopyFromError(`'${src}' matches nothing in ${plan.label}`);
    out.push(...found);
  }
  return out;
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
  for (const src of await expandSources(from, source, plan)) {
    const probe = await from
      .exec(rootExec(source, ['/bin/sh', '-c', SOURCE_SCRIPT, 'wrenn-copy-out', src, 'probe']))
      .catch((err: unknown) => {
        throw new CopyFromError(`reading '${src}' from ${plan.label} failed: ${messageOf(err)}`);
      });
    if (probe.exitCode === MISSING) throw new CopyFromError(`'${src}' does not exist in ${plan.label}`);
    const kind = Buffer.from(probe.stdout).toString('utf8').trim();
    if (probe.exitCode !== 0 || (kind !== 'dir' && kind !== 'file'))
      throw new CopyFromError(
        `reading '${src}' from ${plan.label} failed (exit code ${probe.exitCode}): ${Buffer.from(probe.stderr).toString('utf8').trim().slice(-500)}`,
      );
    const dest = kind === 'file' && plan.intoDir ? posix.join(plan.dest, posix.basename(src)) : plan.dest;
    await streamTar(from, source, to, target, src, dest, kind, plan.label);
    written.push(dest);
  }
  return written;
}

/** Streams the source script's tar into the target script's stdin, chunk by chunk; throws naming the side that failed. */
async function streamTar(
  from: Agent,
  source: Capsule,
  to: Agent,
  target: Capsule,
  src: string,
  dest: string,
  kind: 'dir' | 'file',
  label: string,
): Promise<void> {
  const started = await to
    .startProcess({ exec: rootExec(target, ['/bin/sh', '-c', TARGET_SCRIPT, 'wrenn-copy-in', dest, kind]) })
    .catch((err: unknown) => {
      throw new CopyFromError(`writing '${dest}' failed: ${messageOf(err)}`);
    });
  const process = { selector: { case: 'pid' as const, value: started.pid } };
  const send = (data: Uint8Array, closeStdin = false) =>
    to.sendProcessInput({ capsuleId: target.id, process, data, closeStdin });
  let sourceExit = -1;
  let sourceErr = '';
  let sendErr: unknown = null;
  try {
    for await (const ev of from.execStream(
      rootExec(source, ['/bin/sh', '-c', SOURCE_SCRIPT, 'wrenn-copy-out', src, 'tar']),
    )) {
      const e = ev.event;
      if (e.case === 'stdout') {
        try {
          await send(e.value);
        } catch (err) {
          sendErr = err;
          break;
        }
      } else if (e.case === 'stderr') sourceErr = (sourceErr + Buffer.from(e.value).toString('utf8')).slice(-2000);
      else if (e.case === 'exit') sourceExit = e.value.exitCode;
    }
  } catch (err) {
    sourceErr = `${sourceErr}${messageOf(err)}`;
  } finally {
    await send(new Uint8Array(), true).catch(() => undefined);
  }
  // The target lives until its stdin ends (see TARGET_SCRIPT), and envd keeps a finished
  // process's exit for a while, so its status is there to read now.
  let targetExit = -1;
  let targetErr = '';
  try {
    for await (const ev of to.connectProcess({ capsuleId: target.id, process })) {
      const e = ev.event;
      if (e.case === 'stderr') targetErr = (targetErr + Buffer.from(e.value).toString('utf8')).slice(-2000);
      else if (e.case === 'exit') targetExit = e.value.exitCode;
    }
  } catch (err) {
    targetErr = `${targetErr}${messageOf(err)}`;
  }
  if (sourceExit !== 0)
    throw new CopyFromError(
      `reading '${src}' from ${label} failed (exit code ${sourceExit}): ${sourceErr.trim().slice(-500)}`,
    );
  if (sendErr) throw new CopyFromError(`writing '${dest}' failed: ${messageOf(sendErr)}`);
  if (targetExit !== 0)
    throw new CopyFromError(`writing '${dest}' failed (exit code ${targetExit}): ${targetErr.trim().slice(-500)}`);
}
