// The namespace capsule runtime (Linux namespaces + cgroup v1 + overlayfs; no VM).
export { NamespaceRuntime, ENVD_PORT, readStartTime } from './namespace-runtime.js';
export type { NamespaceRuntimeOptions, NamespaceState, CreateTimings } from './namespace-runtime.js';
export { execInCapsule } from './exec.js';
export type { ExecOptions, ExecResult } from './exec.js';
export { CapsuleCgroups, listCapsuleCgroupIds, CONTROLLERS, DEFAULT_CGROUP_PARENT } from './cgroups.js';
export { nsinitPath, buildNsinit, NSINIT_BINARY, NSINIT_SOURCE } from './nsinit-binary.js';
export { resolveNodeRuntime, GUEST_APP, GUEST_RUNTIME, defaultAppDir } from './node-runtime.js';
