// What to run for a Start request: executable, arguments, working directory, environment and
// identity. Pure computation (no file system access) so the common start stays cheap; problems
// that need the file system (missing cwd, missing executable) are diagnosed only when spawn fails.
import { isAbsolute, join, resolve } from 'node:path';
import { Code, ConnectError } from '@connectrpc/connect';
import type { ProcessConfig, StartRequest } from '@wrenn/protocol/gen/envd/process_pb';
import { spawnIdentity } from '../auth.js';
import type { EnvdState } from '../state.js';
import type { UserInfo } from '../users.js';

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
// envd's own PATH, read once: process.env is a slow native lookup and envd never changes it.
const BASE_PATH = process.env.PATH || DEFAULT_PATH;
const DEFAULT_PTY_SIZE = { cols: 80, rows: 24 };
const MAX_PTY_DIMENSION = 0xffff;

export interface LaunchSpec {
  file: string;
  args: string[];
  cwd: string;
  /** True when the request named no cwd: a missing default falls back to "/" instead of failing. */
  cwdDefaulted: boolean;
  env: Record<string, string>;
  user: UserInfo;
  identity: { uid?: number; gid?: number };
  stdin: boolean;
  pty: { cols: number; rows: number } | undefined;
  tag: string | undefined;
  /** The request's process config as given, reported by List. */
  config: ProcessConfig;
}

export function invalidArgument(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}

/** Checks a PTY size: both dimensions in 1..65535. */
export function validPtySize(
  size: { cols: number; rows: number } | undefined,
  what: string,
): { cols: number; rows: number } {
  if (!size) throw invalidArgument(`${what}: pty.size is required (cols and rows)`);
  const { cols, rows } = size;
  if (!(cols >= 1 && cols <= MAX_PTY_DIMENSION && rows >= 1 && rows <= MAX_PTY_DIMENSION)) {
    throw invalidArgument(
      `${what}: pty size ${cols}x${rows} is invalid; cols and rows must be between 1 and ${MAX_PTY_DIMENSION}`,
    );
  }
  return { cols, rows };
}

/** The working directory: request's, else /init's default, else the user's home; `~` expands to home. */
export function resolveCwd(
  requested: string | undefined,
  state: EnvdState,
  user: UserInfo,
): { cwd: string; defaulted: boolean } {
  const defaulted = !requested;
  let path = requested || state.defaultWorkdir || user.home || '/';
  if (path === '~' || path.startsWith('~/')) path = join(user.home, path.slice(1));
  else if (path.startsWith('~'))
    throw invalidArgument(`cwd "${path}": only "~" and "~/..." (the user's own home) can be expanded`);
  if (!isAbsolute(path)) path = resolve(user.home || '/', path);
  return { cwd: path, defaulted };
}

/** Environment: a base for the user, then /init's variables, then the request's (last wins). */
export function buildEnv(
  state: EnvdState,
  user: UserInfo,
  requestEnvs: Record<string, string>,
  pty: boolean,
): Record<string, string> {
  const env: Record<string, string> = {
    PATH: BASE_PATH,
    HOME: user.home,
    USER: user.name,
    LOGNAME: user.name,
    SHELL: user.shell,
  };
  if (pty) env.TERM = 'xterm-256color';
  for (const key in state.envVars) env[key] = state.envVars[key] as string;
  for (const key in requestEnvs) env[key] = requestEnvs[key] as string;
  return env;
}

export function buildLaunchSpec(state: EnvdState, user: UserInfo, req: StartRequest): LaunchSpec {
  const config = req.process;
  if (!config?.cmd) {
    throw invalidArgument(
      'process.cmd is empty: give the executable to run, e.g. "/bin/bash" with args ["-l", "-c", "echo hi"]',
    );
  }
  const pty = req.pty ? validPtySize(req.pty.size ?? DEFAULT_PTY_SIZE, 'Start') : undefined;
  const { cwd, defaulted } = resolveCwd(config.cwd, state, user);
  return {
    file: config.cmd,
    args: config.args,
    cwd,
    cwdDefaulted: defaulted,
    env: buildEnv(state, user, config.envs, pty !== undefined),
    user,
    identity: spawnIdentity(user),
    // Unset means enabled, for older clients.
    stdin: req.stdin ?? true,
    pty,
    tag: req.tag,
    config,
  };
}
