// fsAsUser: file system calls made with another user's file system identity, so the kernel's own
// permission check applies to the exact object used (no check-then-act race in a root process).
#pragma once
#include <node_api.h>

namespace wrenn {
void registerFsAsUser(napi_env env, napi_value exports);
}  // namespace wrenn
