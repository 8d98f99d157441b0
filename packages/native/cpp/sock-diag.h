// Netlink sock_diag (inet_diag) dumps: the sockets of the caller's network namespace in chosen
// TCP states, without reading /proc/net/tcp (which walks the host-wide established hash).
#pragma once
#include <node_api.h>

namespace wrenn {
void registerSockDiag(napi_env env, napi_value exports);
}  // namespace wrenn
