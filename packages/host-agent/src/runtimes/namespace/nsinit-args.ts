// What a namespace capsule is started with: the `wrenn-nsinit start` command line (namespaces,
// cgroups, overlay layers, id maps, binds, limits, readiness; nsinit.c reads it) and the
// environment of its main process. Pure: it only assembles what the runtime decided.
import { join } from 'node:path';
import { HOST_ID_BASE, idMapLine, layerIdMapLine } from '../../rootfs/id-map.js';
import type { CapsuleCgroups } from './cgroups.js';
import { CONTROLLERS } from './cgroups.js';
import { CAPSULE_NOFILE } from './file-table.js';
import { layerDirs } from './layer-dirs.js';
import type { NamespaceState } from './namespace-runtime.js';
import { GUEST_DIR, type NodeRuntimeLayout } from './node-runtime.js';
import { seccompAllowArg } from './seccomp-switches.js';

const GUEST_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** envd.log grows to this, then is rotated once to envd.log.1 (see nsinit.c). */
export const ENVD_LOG_MAX_BYTES = 1024 * 1024;

/** Host uid (and gid) of root inside the capsule. */
export function capsuleRootId(s: Pick<NamespaceState, 'idRange'>): number {
  return s.idRange?.base ?? HOST_ID_BASE;
}

export interface NsinitStart {
  state: NamespaceState;
  cg: CapsuleCgroups;
  layout: NodeRuntimeLayout;
  /** The capsule's /etc files (etc-files.ts). */
  etcBinds: { src: string; dst: string }[];
  /** Where the helper's host-side parent copies the capsule's output. */
  logPath: string;
  /** This boot's boot_id file (boot-id.ts), bound over /proc/sys/kernel/random/boot_id. */
  bootIdPath?: string;
  /** The capsule's main process (envd unless the runtime was given another). */
  main: string[];
  /** envd says "ready" on a pipe (WRENN_READY_FD) instead of being polled over HTTP. */
  readyFd: boolean;
  readyPort: number;
  readyPath: string;
  readyTimeoutMs: number;
  /** pids.max of the capsule, also its RLIMIT_NPROC. */
  pidsMax: number;
  trace: boolean;
}

/** argv of `wrenn-nsinit start` (see nsinit.c). */
export function nsinitStartArgs(o: NsinitStart): string[] {
  const { state, cg } = o;
  const { spec } = state;
  const rootId = capsuleRootId(state);
  // Without a prepared namespace the capsule gets a fresh one with loopback only.
  const netns = spec.network?.netnsPath;
  const { upper, work } = layerDirs(state);
  // [option, value] pairs.
  const options: [string, string][] = [
    ...(netns ? [['--netns', netns] as [string, string]] : []),
    ...cg.uniqueDirs().map((d): [string, string] => ['--cgroup', d]),
    ...state.layers.map((l): [string, string] => ['--lower', l]),
    ['--upper', upper],
    ['--work', work],
    ['--rootfs', join(state.sandboxDir, 'rootfs')],
    ['--hostname', state.hostname ?? spec.id],
    ['--uid-map', idMapLine(rootId)],
    ['--gid-map', idMapLine(rootId)],
    ['--root-uid', String(rootId)],
    ['--pts-gid', String(rootId + 5)], // group tty inside
    // Layers stay stored as HOST_ID_BASE + u; the capsule sees them as its own ids.
    ...(state.idRange ? [['--layer-idmap', layerIdMapLine(rootId)] as [string, string]] : []),
    ['--nofile', CAPSULE_NOFILE],
    // The same cap as pids.max, checked earlier in fork (cheap refusals; see nsinit.c set_nproc).
    // Only with a host uid of its own: capsules sharing HOST_ID_BASE would share the count.
    ...(state.idRange ? [['--nproc', String(o.pidsMax)] as [string, string]] : []),
    // Root inside has no capabilities over the (host-owned) network namespace: let it bind
    // ports < 1024 and ping anyway.
    ['--sysctl', 'net/ipv4/ip_unprivileged_port_start=0'],
    ['--sysctl', 'net/ipv4/ping_group_range=0 2147483647'],
    ['--tmpfs', GUEST_DIR],
    ...o.layout.binds.map((b): [string, string] => ['--bind', `${b.src}:${b.dst}`]),
    // The capsule's own cgroups, read-only, as the roots of /sys/fs/cgroup/<controller>: envd's
    // metrics then report the capsule's real limits and usage.
    ['--tmpfs', '/sys/fs/cgroup'],
    ...CONTROLLERS.map((c): [string, string] => ['--bind', `${cg.dirs[c]}:/sys/fs/cgroup/${c}`]),
    ...o.etcBinds.map((b): [string, string] => ['--bind-rw-idmapped', `${b.src}:${b.dst}`]),
    // Volumes: their paths were checked against the contract; nsinit refuses symlinks on the way.
    ...(spec.volumes ?? []).map((v): [string, string] => ['--volume', `${v.source}:${v.path}`]),
    ['--ready-port', String(o.readyPort)],
    ['--ready-path', o.readyPath],
    // envd says "ready" on a pipe from the init once it listens (WRENN_READY_FD): no HTTP poll.
    ...(o.readyFd ? [['--ready-fd', '1'] as [string, string]] : []),
    ['--ready-timeout-ms', String(o.readyTimeoutMs)],
    ['--cwd', '/'],
    ...(o.bootIdPath ? [['--boot-id', o.bootIdPath] as [string, string]] : []),
    ['--seccomp-allow', seccompAllowArg(state)],
    ...(o.trace ? [['--trace', '1'] as [string, string]] : []),
    // The capsule's output reaches this file only through the helper's parent, capped.
    ['--log', o.logPath],
    ['--log-max-bytes', String(ENVD_LOG_MAX_BYTES)],
  ];
  return ['start', ...options.flat(), '--', ...o.main];
}

/** The environment of the capsule's main process (envd hands it on to what it runs). */
export function capsuleEnv(spec: NamespaceState['spec']): Record<string, string> {
  return {
    PATH: GUEST_PATH,
    HOME: '/root',
    USER: 'root',
    LANG: 'C.UTF-8',
    ...spec.metadata,
    ...spec.envs,
    WRENN_SANDBOX_ID: spec.id,
    WRENN_TEMPLATE_ID: spec.metadata?.WRENN_TEMPLATE_ID ?? spec.template,
    // Tells envd it runs inside a capsule (it then forwards ports bound on loopback).
    WRENN_CAPSULE: '1',
    // /init's settings at start: the capsule is ready for commands once envd answers.
    ...(spec.envdInit ? { WRENN_ENVD_INIT: JSON.stringify(spec.envdInit) } : {}),
  };
}
