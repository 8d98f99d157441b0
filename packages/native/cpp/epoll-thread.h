// What the addon's byte-moving threads (relay.cc, tls-front.cc) share: one worker thread around an
// epoll set, an eventfd in that set (key 0) that wakes it, and a queue of commands JS pushes to it;
// plus the small N-API argument helpers both files use. Why one place: the two threads had grown
// the same constructor, wake-up, command drain and shutdown line for line, and a fix to one (the
// join before the owner's members go) must reach both. Each owner keeps its own event handling and
// its own epoll keys (anything but 0).
#pragma once

#include <node_api.h>
#include <pthread.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

namespace wrenn {

inline int64_t monotonicMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// N-API argument helpers of the thread modules.
inline napi_value throwError(napi_env env, const std::string& msg) {
  napi_throw_error(env, nullptr, msg.c_str());
  return nullptr;
}

// The number in v, or -1 when it is none.
inline double numberArg(napi_env env, napi_value v) {
  double d = -1;
  napi_get_value_double(env, v, &d);
  return d;
}

// Cmd: what JS asks of the thread (moved through the queue).
template <class Cmd>
class EpollThread {
 public:
  // Creates the epoll set and its eventfd (key 0); `what` names the owner in the error.
  explicit EpollThread(const char* what) {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    ev_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ep_ < 0 || ev_ < 0) {
      std::string msg = std::string(what) + ": epoll/eventfd failed: " + strerror(errno);
      if (ep_ >= 0) close(ep_);
      if (ev_ >= 0) close(ev_);
      throw std::runtime_error(msg);
    }
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.u64 = 0;
    epoll_ctl(ep_, EPOLL_CTL_ADD, ev_, &e);
  }

  EpollThread(const EpollThread&) = delete;
  EpollThread& operator=(const EpollThread&) = delete;

  ~EpollThread() {
    stop();
    close(ep_);
    close(ev_);
  }

  // Starts the thread running `body` (the owner's loop): call it last in the owner's constructor,
  // so the thread never sees a half-built owner.
  void start(const char* name, std::function<void()> body) {
    thread_ = std::thread([name, body = std::move(body)] {
      pthread_setname_np(pthread_self(), name);
      body();
    });
  }

  // Asks the loop to end (stopping() turns true, the thread is woken) and joins it. Call it first in
  // the owner's destructor, before the members the loop uses go; again it does nothing.
  void stop() {
    if (!thread_.joinable()) return;
    stop_ = true;
    wake();
    thread_.join();
  }

  bool stopping() const { return stop_; }
  int epfd() const { return ep_; }

  // From any thread: queues a command and wakes the loop.
  void push(Cmd c) {
    {
      std::lock_guard<std::mutex> l(mu_);
      cmds_.push_back(std::move(c));
    }
    wake();
  }

  // In the thread, when key 0 fired (or after stop(), to drain what is left): the queued commands.
  std::deque<Cmd> take() {
    uint64_t v;
    ssize_t r = read(ev_, &v, sizeof v);
    (void)r;
    std::deque<Cmd> out;
    std::lock_guard<std::mutex> l(mu_);
    out.swap(cmds_);
    return out;
  }

 private:
  void wake() {
    uint64_t one = 1;
    ssize_t r = write(ev_, &one, sizeof one);
    (void)r;
  }

  int ep_ = -1, ev_ = -1;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::deque<Cmd> cmds_;
};

// The one instance per process of a thread module (the relay, the TLS front): owned by the env that
// started it (the main thread's), reporting to JS through a thread-safe function that does not keep
// the process alive by itself. The env's cleanup deletes the instance (which joins its thread)
// before the function goes.
template <class T>
struct ThreadModule {
  T* instance = nullptr;
  napi_env env = nullptr;
  napi_threadsafe_function tsfn = nullptr;

  // make(tsfn) builds the instance (and may throw). False: a JS error is pending.
  template <class Make>
  bool start(napi_env e, napi_value callback, const char* name, napi_threadsafe_function_call_js callJs,
             const char* notAFunction, Make make) {
    napi_value n;
    napi_create_string_utf8(e, name, NAPI_AUTO_LENGTH, &n);
    if (napi_create_threadsafe_function(e, callback, nullptr, n, 0, 1, nullptr, nullptr, nullptr, callJs, &tsfn) != napi_ok) {
      tsfn = nullptr;
      throwError(e, notAFunction);
      return false;
    }
    napi_unref_threadsafe_function(e, tsfn);
    try {
      instance = make(tsfn);
    } catch (const std::exception& ex) {
      napi_release_threadsafe_function(tsfn, napi_tsfn_abort);
      tsfn = nullptr;
      throwError(e, ex.what());
      return false;
    }
    env = e;
    napi_add_env_cleanup_hook(e, cleanup, this);
    return true;
  }

  // The instance when it was started by this env; else nullptr with `notStarted` thrown.
  T* of(napi_env e, const char* notStarted) {
    if (instance && env == e) return instance;
    throwError(e, notStarted);
    return nullptr;
  }

  static void cleanup(void* self) {
    auto* m = static_cast<ThreadModule*>(self);
    delete m->instance;  // joins the thread and closes every fd it still holds
    m->instance = nullptr;
    if (m->tsfn) napi_release_threadsafe_function(m->tsfn, napi_tsfn_abort);
    m->tsfn = nullptr;
    m->env = nullptr;
  }
};

}  // namespace wrenn
