// N-API bindings of uffd.h. Blocking calls (receiveUffd, serveFaults) are meant to run in a
// worker thread; the module is context-aware so workers can load it.
#include <node_api.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "fs-as-user.h"
#include "memory.h"
#include "sock-diag.h"
#include "listen-socket.h"
#include "namespaces.h"
#include "pid-watch.h"
#include "mounts.h"
#include "relay.h"
#include "tls-front.h"
#include "spawn.h"
#include "uffd.h"

#define CHECK(call)                                                   \
  do {                                                                \
    if ((call) != napi_ok) {                                          \
      napi_throw_error(env, nullptr, "wrenn-native: N-API call failed"); \
      return nullptr;                                                 \
    }                                                                 \
  } while (0)

namespace {

std::string getString(napi_env env, napi_value v) {
  size_t len = 0;
  napi_get_value_string_utf8(env, v, nullptr, 0, &len);
  std::string s(len, '\0');
  napi_get_value_string_utf8(env, v, s.data(), len + 1, &len);
  return s;
}

double getNumber(napi_env env, napi_value v) {
  double d = 0;
  napi_get_value_double(env, v, &d);
  return d;
}

napi_value prop(napi_env env, napi_value obj, const char* name) {
  napi_value v;
  napi_get_named_property(env, obj, name, &v);
  return v;
}

napi_value num(napi_env env, double d) {
  napi_value v;
  napi_create_double(env, d, &v);
  return v;
}

void setNum(napi_env env, napi_value obj, const char* name, double d) { napi_set_named_property(env, obj, name, num(env, d)); }

template <typename F>
napi_value guarded(napi_env env, F f) {
  try {
    return f();
  } catch (const std::exception& e) {
    napi_throw_error(env, nullptr, e.what());
    return nullptr;
  }
}

napi_value args(napi_env env, napi_callback_info info, size_t want, napi_value* argv) {
  size_t argc = want;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < want) {
    napi_throw_type_error(env, nullptr, "wrenn-native: missing arguments");
    return nullptr;
  }
  return argv[0];
}

napi_value ReceiveUffd(napi_env env, napi_callback_info info) {
  napi_value a[2];
  if (!args(env, info, 2, a)) return nullptr;
  return guarded(env, [&]() -> napi_value {
    auto r = wrenn::receiveUffd(getString(env, a[0]), static_cast<int>(getNumber(env, a[1])));
    napi_value o, body;
    CHECK(napi_create_object(env, &o));
    setNum(env, o, "uffd", r.uffd);
    CHECK(napi_create_string_utf8(env, r.body.c_str(), r.body.size(), &body));
    napi_set_named_property(env, o, "body", body);
    return o;
  });
}

napi_value SendFd(napi_env env, napi_callback_info info) {
  napi_value a[3];
  if (!args(env, info, 3, a)) return nullptr;
  return guarded(env, [&]() -> napi_value {
    wrenn::sendFd(getString(env, a[0]), static_cast<int>(getNumber(env, a[1])), getString(env, a[2]));
    return nullptr;
  });
}

// serveFaults({ uffd, regions: [{base,size,offset,pageSize}], blockSize, blockGen: Int32Array, files: string[], stopFd })
napi_value ServeFaults(napi_env env, napi_callback_info info) {
  napi_value a[1];
  if (!args(env, info, 1, a)) return nullptr;
  return guarded(env, [&]() -> napi_value {
    napi_value o = a[0];
    std::vector<wrenn::Region> regions;
    napi_value regs = prop(env, o, "regions");
    uint32_t n = 0;
    CHECK(napi_get_array_length(env, regs, &n));
    for (uint32_t i = 0; i < n; i++) {
      napi_value r;
      napi_get_element(env, regs, i, &r);
      regions.push_back({static_cast<uint64_t>(getNumber(env, prop(env, r, "base"))),
                         static_cast<uint64_t>(getNumber(env, prop(env, r, "size"))),
                         static_cast<uint64_t>(getNumber(env, prop(env, r, "offset"))),
                         static_cast<uint64_t>(getNumber(env, prop(env, r, "pageSize")))});
    }
    napi_typedarray_type type;
    size_t len = 0;
    void* data = nullptr;
    CHECK(napi_get_typedarray_info(env, prop(env, o, "blockGen"), &type, &len, &data, nullptr, nullptr));
    if (type != napi_int32_array) throw std::runtime_error("blockGen must be an Int32Array");
    std::vector<int32_t> gen(static_cast<int32_t*>(data), static_cast<int32_t*>(data) + len);
    std::vector<std::string> files;
    napi_value fl = prop(env, o, "files");
    CHECK(napi_get_array_length(env, fl, &n));
    for (uint32_t i = 0; i < n; i++) {
      napi_value f;
      napi_get_element(env, fl, i, &f);
      files.push_back(getString(env, f));
    }
    auto st = wrenn::serveFaults(static_cast<int>(getNumber(env, prop(env, o, "uffd"))), regions,
                                 static_cast<uint64_t>(getNumber(env, prop(env, o, "blockSize"))), gen, files,
                                 static_cast<int>(getNumber(env, prop(env, o, "stopFd"))),
                                 static_cast<uint64_t>(std::max(1.0, getNumber(env, prop(env, o, "prefetchPages")))));
    napi_value out;
    CHECK(napi_create_object(env, &out));
    setNum(env, out, "faults", st.faults);
    setNum(env, out, "copiedBytes", st.copiedBytes);
    setNum(env, out, "zeroPages", st.zeroPages);
    setNum(env, out, "removeEvents", st.removeEvents);
    return out;
  });
}

napi_value RegisterRegion(napi_env env, napi_callback_info info) {
  napi_value a[1];
  if (!args(env, info, 1, a)) return nullptr;
  return guarded(env, [&]() -> napi_value {
    auto r = wrenn::registerRegion(static_cast<uint64_t>(getNumber(env, a[0])));
    napi_value o;
    CHECK(napi_create_object(env, &o));
    setNum(env, o, "uffd", r.uffd);
    setNum(env, o, "addr", static_cast<double>(r.addr));
    setNum(env, o, "size", static_cast<double>(r.size));
    return o;
  });
}

// readMemory(addr, len): copies process memory at addr into a new Buffer (touching it faults it in).
napi_value ReadMemory(napi_env env, napi_callback_info info) {
  napi_value a[2];
  if (!args(env, info, 2, a)) return nullptr;
  auto addr = static_cast<uint64_t>(getNumber(env, a[0]));
  auto len = static_cast<size_t>(getNumber(env, a[1]));
  void* dst = nullptr;
  napi_value buf;
  CHECK(napi_create_buffer(env, len, &dst, &buf));
  memcpy(dst, reinterpret_cast<const void*>(addr), len);
  return buf;
}

napi_value DataRanges(napi_env env, napi_callback_info info) {
  napi_value a[1];
  if (!args(env, info, 1, a)) return nullptr;
  return guarded(env, [&]() -> napi_value {
    auto ranges = wrenn::dataRanges(getString(env, a[0]));
    napi_value arr;
    CHECK(napi_create_array_with_length(env, ranges.size(), &arr));
    for (size_t i = 0; i < ranges.size(); i++) {
      napi_value pair;
      napi_create_array_with_length(env, 2, &pair);
      napi_set_element(env, pair, 0, num(env, static_cast<double>(ranges[i].first)));
      napi_set_element(env, pair, 1, num(env, static_cast<double>(ranges[i].second)));
      napi_set_element(env, arr, i, pair);
    }
    return arr;
  });
}

napi_value MakePipe(napi_env env, napi_callback_info) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) {
    napi_throw_error(env, nullptr, "pipe2 failed");
    return nullptr;
  }
  napi_value arr;
  napi_create_array_with_length(env, 2, &arr);
  napi_set_element(env, arr, 0, num(env, fds[0]));
  napi_set_element(env, arr, 1, num(env, fds[1]));
  return arr;
}

napi_value CloseFd(napi_env env, napi_callback_info info) {
  napi_value a[1];
  if (!args(env, info, 1, a)) return nullptr;
  close(static_cast<int>(getNumber(env, a[0])));
  return nullptr;
}

napi_value SetHostnameIn(napi_env env, napi_callback_info info) {
  napi_value a[2];
  if (!args(env, info, 2, a)) return nullptr;
  return guarded(env, [&]() -> napi_value {
    wrenn::setHostnameIn(static_cast<int>(getNumber(env, a[0])), getString(env, a[1]));
    return nullptr;
  });
}

}  // namespace

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"receiveUffd", nullptr, ReceiveUffd, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sendFd", nullptr, SendFd, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"serveFaults", nullptr, ServeFaults, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"registerRegion", nullptr, RegisterRegion, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"readMemory", nullptr, ReadMemory, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"dataRanges", nullptr, DataRanges, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"closeFd", nullptr, CloseFd, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"makePipe", nullptr, MakePipe, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setHostnameIn", nullptr, SetHostnameIn, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"createReaper", nullptr, wrenn::CreateReaper, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"spawnProcess", nullptr, wrenn::SpawnProcess, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setReaperRef", nullptr, wrenn::SetReaperRef, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  wrenn::registerRelay(env, exports);
  wrenn::registerTlsFront(env, exports);
  wrenn::registerMemory(env, exports);
  wrenn::registerFsAsUser(env, exports);
  wrenn::registerPidWatch(env, exports);
  wrenn::registerMounts(env, exports);
  wrenn::registerSockDiag(env, exports);
  wrenn::registerListenSocket(env, exports);
  return exports;
}
