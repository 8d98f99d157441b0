// @wrenn/sdk: capsules, commands, terminals, files, code interpreter, snapshots, templates, volumes and hosts over Wrenn's native API.

export type {
  CapsuleConnectOptions,
  CapsuleCreateOptions,
  CapsuleForkOptions,
  CapsuleForkResult,
  CapsuleListFilters,
} from './capsule.js';
export { Capsule } from './capsule.js';
export type {
  ChartData,
  CodeContext,
  CodeInterpreterOptions,
  CreateCodeContextOptions,
  ExecutionError,
  ExecutionResult,
  OutputMessage,
  RunCodeOptions,
} from './code-interpreter.js';
export { CODE_INTERPRETER_PORT, CodeInterpreter, Execution } from './code-interpreter.js';
export type { BackgroundOptions, CommandResult, CommandStartOptions, RunOptions } from './commands.js';
export { CommandHandle, Commands } from './commands.js';
export type { ConnectionOptions } from './config.js';
export { DEFAULT_BASE_URL, resolveConnection } from './config.js';
export {
  AuthenticationError,
  CapsuleGoneError,
  CommandExitError,
  ConflictError,
  ConnectionError,
  HostFullError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  TimeoutError,
  WrennError,
} from './errors.js';
export type { FilesystemEvent, WatchHandle, WriteData, WriteEntry, WriteInfo } from './filesystem.js';
export { Filesystem } from './filesystem.js';
export type { HostInfo, ImagePruneReport } from './hosts.js';
export { Host } from './hosts.js';
export { ApiClient } from './http.js';
export type { PullImageOptions } from './images.js';
export { pullImage } from './images.js';
export type { PtyCreateOptions } from './pty.js';
export { Pty, PtyHandle } from './pty.js';
export { Snapshot, Template } from './templates.js';
export type {
  BuildTemplateOptions,
  TemplateBuildInfo,
  TemplateBuildInput,
  TemplateBuildStatus,
} from './templates-build.js';
export {
  buildTemplate,
  followTemplateBuildLogs,
  getTemplateBuild,
  startTemplateBuild,
  TemplateBuildError,
} from './templates-build.js';
export type { CapsuleInfo, CapsuleMetrics, CapsuleState, EntryInfo, ProcessInfo, TemplateInfo } from './types.js';
export type { VolumeEntry, VolumeInfo } from './volumes.js';
export { Volume } from './volumes.js';
