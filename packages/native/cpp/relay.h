// A native byte relay between pairs of connected sockets (the sandbox proxy's fixed-target
// connections): one thread with epoll moves bytes both ways so Node's event loop does no per-chunk
// work for them. See relay.cc.
#pragma once
#include <node_api.h>

namespace wrenn {
/** Adds relayStart, relayAdd, relayClose, relayCloseGroup, relayStats, relayRef to exports. */
void registerRelay(napi_env env, napi_value exports);
}  // namespace wrenn
