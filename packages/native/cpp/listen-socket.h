// A listening TCP socket made without Node's listen(port, host): since Node 22 that path resolves
// the host and runs node's IPv6 regular expression on it (isIpv6LinkLocal), several milliseconds of
// CPU at its first use in a process, paid by every envd start. Node takes the socket over with
// server.listen({ fd }).
#pragma once
#include <node_api.h>

namespace wrenn {
void registerListenSocket(napi_env env, napi_value exports);
}  // namespace wrenn
