// Memory housekeeping Node lacks: dropping a process's own mappings of clean file pages, and
// giving glibc's free heap memory back to the kernel.
#pragma once
#include <node_api.h>

namespace wrenn {
void registerMemory(napi_env env, napi_value exports);
}  // namespace wrenn
