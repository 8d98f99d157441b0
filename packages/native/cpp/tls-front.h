// The TLS front (tls-front.cc): one native thread terminates TLS for the control plane's listener
// and hands JS the plaintext of each connection on a Unix socketpair.
#pragma once
#include <node_api.h>

namespace wrenn {
/** Adds tlsFrontStart, tlsFrontContext, tlsFrontAdd, tlsFrontDrop, tlsFrontStats to exports. */
void registerTlsFront(napi_env env, napi_value exports);
}  // namespace wrenn
