#pragma once
// Process spawning without fork: clone(CLONE_VM|CLONE_VFORK) shares the parent's memory, so the
// cost does not grow with the parent's size (a Node process's fork copies ~50 MB of page tables).
#include <node_api.h>

namespace wrenn {
// createReaper(onExit(pid, code|null, signal|null), { threads? }): the handle spawnProcess reports
// exits through (pidfds in the event loop; a waitpid thread per child with threads: true or no pidfd).
napi_value CreateReaper(napi_env env, napi_callback_info info);
// spawnProcess(reaper, opts) -> { pid, stdin, stdout, stderr, fds } | { errno, stage }
napi_value SpawnProcess(napi_env env, napi_callback_info info);
// setReaperRef(reaper, pid, ref): whether that running child keeps the event loop alive (ChildProcess.unref).
napi_value SetReaperRef(napi_env env, napi_callback_info info);
}  // namespace wrenn
