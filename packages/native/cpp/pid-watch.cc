// pid-watch.h: a pidfd (pidfd_open, Linux 5.3+) turns readable when its process exits, zombie or
// not, so uv_poll on it in the JS thread's loop tells the agent at once, with no thread, no timer
// and no per-process polling. Nothing is reaped here: the process is someone else's child.
#include "pid-watch.h"

#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uv.h>

#include <unordered_map>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

namespace wrenn {
namespace {

struct Watches;

struct Watch {
  uv_poll_t poll;
  Watches* owner;
  int32_t id;
  int pidfd;
  napi_ref callback;
};

struct Watches {
  napi_env env;
  uv_loop_t* loop;
  napi_async_context context;
  int32_t next = 1;
  bool closing = false;
  std::unordered_map<int32_t, Watch*> live;
};

void closed(uv_handle_t* h) {
  auto* w = static_cast<Watch*>(h->data);
  close(w->pidfd);
  delete w;
}

// Stops and frees a watch; its JS callback reference is dropped by the caller (JS thread).
void stop(Watch* w) {
  w->owner->live.erase(w->id);
  uv_poll_stop(&w->poll);
  uv_close(reinterpret_cast<uv_handle_t*>(&w->poll), closed);
}

void onReadable(uv_poll_t* poll, int, int) {
  auto* w = static_cast<Watch*>(poll->data);
  Watches* ws = w->owner;
  napi_env env = ws->env;
  napi_ref ref = w->callback;
  stop(w);
  if (ws->closing) return;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value cb, recv, result;
  napi_get_reference_value(env, ref, &cb);
  napi_delete_reference(env, ref);
  napi_get_global(env, &recv);
  if (napi_make_callback(env, ws->context, recv, cb, 0, nullptr, &result) == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
  napi_close_handle_scope(env, scope);
}

void cleanup(void* data) {
  auto* ws = static_cast<Watches*>(data);
  ws->closing = true;
  while (!ws->live.empty()) stop(ws->live.begin()->second);
}

napi_value WatchExit(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value a[2];
  Watches* ws = nullptr;
  napi_get_cb_info(env, info, &argc, a, nullptr, reinterpret_cast<void**>(&ws));
  napi_valuetype t0 = napi_undefined, t1 = napi_undefined;
  if (argc >= 2) {
    napi_typeof(env, a[0], &t0);
    napi_typeof(env, a[1], &t1);
  }
  if (t0 != napi_number || t1 != napi_function) {
    napi_throw_type_error(env, nullptr, "watchExit(pid, onExit): pass a pid and a function");
    return nullptr;
  }
  int32_t pid = 0;
  napi_get_value_int32(env, a[0], &pid);
  napi_value out;
  int pidfd = pid > 0 ? static_cast<int>(syscall(SYS_pidfd_open, pid, 0)) : -1;
  if (pidfd < 0) {
    napi_create_int32(env, pid > 0 ? -errno : -EINVAL, &out);
    return out;
  }
  auto* w = new Watch{};
  w->owner = ws;
  w->pidfd = pidfd;
  w->poll.data = w;
  if (uv_poll_init(ws->loop, &w->poll, pidfd) != 0) {
    close(pidfd);
    delete w;
    napi_create_int32(env, -EIO, &out);
    return out;
  }
  napi_create_reference(env, a[1], 1, &w->callback);
  w->id = ws->next++;
  if (ws->next <= 0) ws->next = 1;
  ws->live[w->id] = w;
  uv_poll_start(&w->poll, UV_READABLE, onReadable);
  // A watched capsule must not keep the agent's process from exiting.
  uv_unref(reinterpret_cast<uv_handle_t*>(&w->poll));
  napi_create_int32(env, w->id, &out);
  return out;
}

napi_value UnwatchExit(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value a[1];
  Watches* ws = nullptr;
  napi_get_cb_info(env, info, &argc, a, nullptr, reinterpret_cast<void**>(&ws));
  int32_t id = 0;
  if (argc < 1 || napi_get_value_int32(env, a[0], &id) != napi_ok) {
    napi_throw_type_error(env, nullptr, "unwatchExit(id): pass the id watchExit returned");
    return nullptr;
  }
  auto it = ws->live.find(id);
  if (it != ws->live.end()) {
    napi_ref ref = it->second->callback;
    stop(it->second);
    napi_delete_reference(env, ref);
  }
  return nullptr;
}

}  // namespace

void registerPidWatch(napi_env env, napi_value exports) {
  auto* ws = new Watches{};
  ws->env = env;
  napi_value resource, name;
  napi_create_object(env, &resource);
  napi_create_string_utf8(env, "wrenn-native-pid-watch", NAPI_AUTO_LENGTH, &name);
  if (napi_get_uv_event_loop(env, &ws->loop) != napi_ok || napi_async_init(env, resource, name, &ws->context) != napi_ok) {
    delete ws;
    return;
  }
  napi_add_env_cleanup_hook(env, cleanup, ws);
  napi_property_descriptor props[] = {
      {"watchExit", nullptr, WatchExit, nullptr, nullptr, nullptr, napi_default, ws},
      {"unwatchExit", nullptr, UnwatchExit, nullptr, nullptr, nullptr, napi_default, ws},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}

}  // namespace wrenn
