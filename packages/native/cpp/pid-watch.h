#pragma once
// Exit notices for processes that are not our children (a capsule's init, whose parent is the
// `wrenn-nsinit start` helper): a pidfd per process, polled by the JS thread's own event loop.
#include <node_api.h>

namespace wrenn {
// watchExit(pid, onExit()) -> id | -errno: onExit runs once on the JS thread when the process has
// exited. The watch does not keep the event loop alive.
// unwatchExit(id): stops a watch that has not fired (no-op otherwise).
void registerPidWatch(napi_env env, napi_value exports);
}  // namespace wrenn
