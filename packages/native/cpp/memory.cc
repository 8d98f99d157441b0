// See memory.h. The caller (envd's idle-memory.ts) picks the ranges: only private, read-only,
// non-executable mappings of a file that hold no anonymous (copied-on-write) page, so that
// MADV_DONTNEED only unmaps page-cache pages, which fault back in from the file if touched again.
#include "memory.h"

#include "napi-errno.h"

#include <errno.h>
#include <malloc.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string>

namespace wrenn {
namespace {

// adviseDontNeed(start, length): madvise(MADV_DONTNEED) on a page-aligned range of this process.
napi_value AdviseDontNeed(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  double start = 0, length = 0;
  if (argc < 2 || napi_get_value_double(env, argv[0], &start) != napi_ok ||
      napi_get_value_double(env, argv[1], &length) != napi_ok) {
    napi_throw_type_error(env, nullptr, "adviseDontNeed(start, length) needs two numbers");
    return nullptr;
  }
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  if (start <= 0 || length <= 0 || start != static_cast<double>(static_cast<uint64_t>(start)) ||
      static_cast<uint64_t>(start) % static_cast<uint64_t>(page) != 0 ||
      static_cast<uint64_t>(length) % static_cast<uint64_t>(page) != 0) {
    napi_throw_range_error(env, nullptr, "adviseDontNeed: start and length must be positive multiples of the page size");
    return nullptr;
  }
  void* addr = reinterpret_cast<void*>(static_cast<uintptr_t>(start));
  if (madvise(addr, static_cast<size_t>(length), MADV_DONTNEED) != 0) return throwErrno(env, "madvise", errno);
  return nullptr;
}

// mallocTrim(): malloc_trim(0); returns whether memory was released.
napi_value MallocTrim(napi_env env, napi_callback_info) {
  napi_value result;
  napi_get_boolean(env, malloc_trim(0) == 1, &result);
  return result;
}

}  // namespace

void registerMemory(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"adviseDontNeed", nullptr, AdviseDontNeed, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"mallocTrim", nullptr, MallocTrim, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}

}  // namespace wrenn
