// Starts the process a LaunchSpec describes, with pipes or on a PTY. Failures are turned into
// Connect errors that say what was wrong (missing cwd, missing executable, permission).
// Two quiet fallbacks keep E2B clients working everywhere:
//  - the e2b SDK always runs `/bin/bash -l -c <cmd>`; minimal (busybox) capsules have no bash,
//    so `/bin/bash` becomes `/bin/sh` (busybox ash and dash accept the same -l/-c/-i flags);
//  - a *default* cwd that does not exist (users like `nobody` have home /nonexistent) becomes "/".
// Pipe processes start with @wrenn/native's vfork-style spawn (native-spawn.ts), which also sets
// the user's supplementary groups; child_process.spawn (+ setpriv for groups) when it is missing.
import { spawn as spawnChild } from 'node:child_process';
import { existsSync, constants as fsConstants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { Code, ConnectError } from '@connectrpc/connect';
import type { LaunchSpec } from './launch-spec.js';
import type { ManagedProcess } from './managed-process.js';
import { nativeSpawnAvailable, spawnNative } from './native-spawn.js';
import { type PipeChild, PipeProcess } from './pipe-process.js';
import { PtyProcess } from './pty-process.js';
import type { Subscription } from './subscription.js';

const BASH = '/bin/bash';
const SH = '/bin/sh';

/** `/bin/bash` becomes `/bin/sh` where bash is missing, checked before each start (one stat). */
function executableFor(file: string): string {
  return file === BASH && !existsSync(BASH) ? SH : file;
}

const ownUid = process.getuid?.();
const ownGid = process.getgid?.();

/** uid/gid for spawn only when they change anything: switching identity costs syscalls per start. */
function identityOptions(spec: LaunchSpec): { uid?: number; gid?: number } {
  const { uid, gid } = spec.identity;
  if (uid === undefined || (uid === ownUid && gid === ownGid)) return {};
  return { uid, gid };
}

// Node's spawn drops every supplementary group when it switches uid/gid, so a user in e.g. the
// `docker` or `sudo` group would lose it. Without the native spawn, such users' processes are
// started through util-linux's setpriv, which sets uid, gid and the groups, then execs the command.
const SETPRIV = '/usr/bin/setpriv';
const SETPRIV_RECHECK_MS = 60_000;
let setprivCheckedAt = -Infinity;
let setprivPresent = false;

async function hasSetpriv(): Promise<boolean> {
  const now = Date.now();
  if (now - setprivCheckedAt > SETPRIV_RECHECK_MS) {
    setprivCheckedAt = now;
    setprivPresent = await isExecutableFile(SETPRIV);
  }
  return setprivPresent;
}

function supplementaryGroups(spec: LaunchSpec): number[] {
  return spec.user.groups.filter((g) => g !== spec.user.gid);
}

function describe(spec: LaunchSpec, file: string): string {
  const command = [file, ...spec.args].join(' ');
  return `process '${command.length > 200 ? `${command.slice(0, 200)}...` : command}' as user '${spec.user.name}' in '${spec.cwd}'`;
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

async function pathExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function isExecutableFile(path: string): Promise<boolean> {
  try {
    await access(path, fsConstants.X_OK);
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Finds `file` like execvp does (PATH search unless it contains a slash). */
async function findExecutable(file: string, path: string | undefined): Promise<string | undefined> {
  if (file.includes('/')) return (await isExecutableFile(file)) ? file : undefined;
  for (const dir of (path || '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, file);
    if (await isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

type Retry = { file?: string; cwd?: string };

/** Works out why a start failed: either a fallback to retry with, or the error to report. */
async function diagnose(
  spec: LaunchSpec,
  file: string,
  cwd: string,
  code: string | undefined,
  message: string,
): Promise<Retry | ConnectError> {
  if (!(await isDirectory(cwd))) {
    if (spec.cwdDefaulted && cwd !== '/') return { cwd: '/' };
    return new ConnectError(
      `cwd '${cwd}' does not exist or is not a directory; create it first or pick another cwd`,
      Code.InvalidArgument,
    );
  }
  if (code === 'ENOENT' || code === 'EACCES') {
    if (file === BASH && !(await isExecutableFile(BASH))) {
      return { file: SH };
    }
    if (code === 'ENOENT') {
      const exists = file.includes('/') ? await pathExists(file) : false;
      return new ConnectError(
        `cannot start ${describe(spec, file)}: ${exists ? `the interpreter named in '${file}' (#! line) was not found` : `executable '${file}' not found`}`,
        Code.InvalidArgument,
      );
    }
    return new ConnectError(
      `cannot start ${describe(spec, file)}: permission denied (the user may not be allowed to execute '${file}' or to enter '${cwd}')`,
      Code.InvalidArgument,
    );
  }
  return new ConnectError(`cannot start ${describe(spec, file)}: ${message}`, Code.InvalidArgument);
}

type SpawnOutcome =
  | { child: PipeChild; pid: number }
  | { error: Promise<NodeJS.ErrnoException> | NodeJS.ErrnoException };

/** How to spawn: directly with uid/gid, or through setpriv to keep supplementary groups. */
interface Invocation {
  file: string;
  args: string[];
  identity: { uid?: number; gid?: number };
}

function direct(spec: LaunchSpec, file: string): Invocation {
  return { file, args: spec.args, identity: identityOptions(spec) };
}

function viaSetpriv(spec: LaunchSpec, file: string, groups: number[]): Invocation {
  const { uid, gid } = spec.user;
  return {
    file: SETPRIV,
    args: ['--reuid', String(uid), '--regid', String(gid), '--groups', groups.join(','), '--', file, ...spec.args],
    identity: {},
  };
}

/** The native spawn: identity with the user's groups (primary first, like setpriv's list). */
function spawnNativeWithPipes(spec: LaunchSpec, file: string, cwd: string): SpawnOutcome {
  const { uid, gid } = identityOptions(spec);
  try {
    return spawnNative({
      file,
      args: spec.args,
      cwd,
      env: spec.env,
      stdin: spec.stdin,
      identity:
        uid === undefined
          ? undefined
          : { uid, gid: gid ?? spec.user.gid, groups: [gid ?? spec.user.gid, ...supplementaryGroups(spec)] },
    });
  } catch (err) {
    return { error: err as NodeJS.ErrnoException };
  }
}

function spawnWithPipes(spec: LaunchSpec, how: Invocation, cwd: string): SpawnOutcome {
  let child: ReturnType<typeof spawnChild>;
  try {
    child = spawnChild(how.file, how.args, {
      cwd,
      env: spec.env,
      ...how.identity,
      // Own process group: signals reach the shell's children too.
      detached: true,
      stdio: [spec.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    return { error: err as NodeJS.ErrnoException };
  }
  if (child.pid !== undefined) return { child, pid: child.pid };
  // Node reports exec failures (ENOENT, EACCES) as an 'error' event on the next tick.
  return { error: new Promise((resolve) => child.once('error', resolve)) };
}

/** Starts with `start`, retrying with the fallbacks diagnose() finds (bash -> sh, default cwd -> /). */
async function startWithFallbacks(
  spec: LaunchSpec,
  firstSubscriber: Subscription,
  start: (file: string, cwd: string) => SpawnOutcome,
): Promise<ManagedProcess> {
  let file = executableFor(spec.file);
  let cwd = spec.cwd;
  for (let attempt = 0; ; attempt++) {
    const outcome = start(file, cwd);
    if ('child' in outcome)
      return new PipeProcess(outcome.child, outcome.pid, spec.config, spec.tag, spec.stdin, firstSubscriber);
    const err = await outcome.error;
    const verdict = await diagnose(spec, file, cwd, err.code, err.message);
    if (verdict instanceof ConnectError || attempt >= 2) {
      throw verdict instanceof ConnectError
        ? verdict
        : new ConnectError(`cannot start ${describe(spec, file)}: ${err.message}`, Code.InvalidArgument);
    }
    file = verdict.file ?? file;
    cwd = verdict.cwd ?? cwd;
  }
}

async function launchWithPipes(spec: LaunchSpec, firstSubscriber: Subscription): Promise<ManagedProcess> {
  if (nativeSpawnAvailable())
    return startWithFallbacks(spec, firstSubscriber, (file, cwd) => spawnNativeWithPipes(spec, file, cwd));
  let file = executableFor(spec.file);
  let cwd = spec.cwd;
  const groups = identityOptions(spec).uid !== undefined ? supplementaryGroups(spec) : [];
  if (groups.length > 0 && (await hasSetpriv())) {
    // setpriv reports a missing command only as exit code 127, so check what direct spawns learn from errors.
    if (!(await isDirectory(cwd)) && spec.cwdDefaulted) cwd = '/';
    if (file === BASH && !(await isExecutableFile(BASH))) file = SH;
    const outcome = spawnWithPipes(spec, viaSetpriv(spec, file, [spec.user.gid, ...groups]), cwd);
    if ('child' in outcome)
      return new PipeProcess(outcome.child, outcome.pid, spec.config, spec.tag, spec.stdin, firstSubscriber);
    const err = await outcome.error;
    const verdict = await diagnose(spec, file, cwd, err.code, err.message);
    throw verdict instanceof ConnectError
      ? verdict
      : new ConnectError(`cannot start ${describe(spec, file)}: ${err.message}`, Code.InvalidArgument);
  }
  return startWithFallbacks(spec, firstSubscriber, (f, c) => spawnWithPipes(spec, direct(spec, f), c));
}

type NodePty = typeof import('node-pty');
let nodePty: Promise<NodePty> | undefined;

async function launchOnPty(spec: LaunchSpec, firstSubscriber: Subscription): Promise<ManagedProcess> {
  // node-pty forks and execs in the child, where failures only show as exit code 1, so check first.
  let cwd = spec.cwd;
  if (!(await isDirectory(cwd))) {
    if (!spec.cwdDefaulted)
      throw new ConnectError(
        `cwd '${cwd}' does not exist or is not a directory; create it first or pick another cwd`,
        Code.InvalidArgument,
      );
    cwd = '/';
  }
  let file = executableFor(spec.file);
  if (!(await findExecutable(file, spec.env.PATH))) {
    const verdict = await diagnose(spec, file, cwd, 'ENOENT', 'not found');
    if (verdict instanceof ConnectError) throw verdict;
    file = verdict.file ?? file;
  }
  const pty = await (nodePty ??= import('node-pty'));
  const { uid, gid } = identityOptions(spec);
  // node-pty switches uid/gid but leaves envd's supplementary groups in the child: give it the
  // user's own groups for the fork (JS runs single-threaded, so nothing else forks meanwhile).
  const { getgroups, setgroups } = process;
  const savedGroups = uid !== undefined && getgroups && setgroups ? getgroups() : undefined;
  try {
    if (savedGroups) setgroups?.(spec.user.groups);
    const size = spec.pty ?? { cols: 80, rows: 24 };
    const term = pty.spawn(file, spec.args, {
      name: spec.env.TERM ?? 'xterm-256color',
      cols: size.cols,
      rows: size.rows,
      cwd,
      env: spec.env,
      encoding: null,
      ...(uid !== undefined ? { uid, gid } : {}),
    });
    return new PtyProcess(term, spec.config, spec.tag, firstSubscriber);
  } catch (err) {
    throw new ConnectError(`cannot start ${describe(spec, file)} on a PTY: ${(err as Error).message}`, Code.Internal);
  } finally {
    if (savedGroups) setgroups?.(savedGroups);
  }
}

/** Starts the process; `firstSubscriber` is attached before any output can arrive. */
export function launchProcess(spec: LaunchSpec, firstSubscriber: Subscription): Promise<ManagedProcess> {
  return spec.pty ? launchOnPty(spec, firstSubscriber) : launchWithPipes(spec, firstSubscriber);
}
