// spawnProcess: starts a program with pipes in its own session, as another user if asked, with
// clone(CLONE_VM|CLONE_VFORK): the child borrows the parent's memory until it execs, so there are
// no page tables to copy (Node's child_process forks, which costs milliseconds in a big process).
// While the child shares our memory it runs only raw system calls: glibc's wrappers for setuid and
// friends would try to signal the parent's threads, and nothing may take a lock or allocate.
// An exec failure is written by the child into shared memory (the parent resumes only once the
// child has exec'd or exited), so no error pipe is needed.
// Exits are reaped with waitpid(pid) when the child's pidfd turns readable in the JS thread's event
// loop — only pids spawned here, never waitpid(-1), so libuv's and node-pty's children stay theirs.
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

namespace wrenn {
namespace {

// Where a start failed: reported to JS with the errno.
enum Stage { kNone = 0, kSetsid, kDup, kSetgroups, kSetgid, kSetuid, kChdir, kExec, kPipe, kClone, kReaper };
const char* const kStageNames[] = {"", "setsid", "dup2", "setgroups", "setgid", "setuid", "chdir", "exec", "pipe", "clone", "reaper"};

constexpr size_t kChildStack = 64 * 1024;
constexpr size_t kReaperStack = 64 * 1024;
constexpr int kFallbackMaxFd = 4096;

struct ChildArgs {
  std::vector<const char*> candidates;  // paths to try with execve, in order (PATH search done here)
  char* const* argv;
  char* const* envp;
  const char* cwd;
  const int* fds;  // fds[i] becomes the child's fd i; all >= nfds so no dup overwrites another source
  int nfds;        // at least 3
  bool setsid;
  bool setIds;
  uid_t uid;
  gid_t gid;
  const gid_t* groups;
  size_t ngroups;
  volatile int err;
  volatile int stage;
};

// The kernel's struct sigaction (not glibc's): handler, flags, restorer, mask.
struct KernelSigaction {
  void* handler;
  unsigned long flags;
  void* restorer;
  uint64_t mask;
};

long sys(long n, long a = 0, long b = 0, long c = 0, long d = 0) { return syscall(n, a, b, c, d); }

[[noreturn]] void childFail(ChildArgs* a, Stage stage, int err) {
  a->err = err;
  a->stage = stage;
  syscall(SYS_exit_group, 127);
  __builtin_unreachable();
}

int childMain(void* p) {
  auto* a = static_cast<ChildArgs*>(p);
  // Every signal back to its default action (Node ignores SIGPIPE, handles SIGINT...), then unblock all.
  KernelSigaction dfl = {nullptr, 0, nullptr, 0};  // SIG_DFL is 0
  for (int s = 1; s < 65; s++) {
    if (s != SIGKILL && s != SIGSTOP) sys(SYS_rt_sigaction, s, reinterpret_cast<long>(&dfl), 0, 8);
  }
  uint64_t empty = 0;
  sys(SYS_rt_sigprocmask, SIG_SETMASK, reinterpret_cast<long>(&empty), 0, 8);
  if (a->setsid && sys(SYS_setsid) < 0) childFail(a, kSetsid, errno);
  for (int i = 0; i < a->nfds; i++) {
    if (sys(SYS_dup3, a->fds[i], i, 0) < 0) childFail(a, kDup, errno);
  }
  // Everything else closes: fds without O_CLOEXEC (inherited by envd, opened by libraries) must not leak.
  if (sys(SYS_close_range, a->nfds, ~0U, 0) < 0) {
    for (int fd = a->nfds; fd < kFallbackMaxFd; fd++) sys(SYS_close, fd);
  }
  // libuv's order (chdir as the starting user, then the identity), which Node's spawn users expect.
  if (sys(SYS_chdir, reinterpret_cast<long>(a->cwd)) < 0) childFail(a, kChdir, errno);
  if (a->setIds) {
    if (sys(SYS_setgroups, static_cast<long>(a->ngroups), reinterpret_cast<long>(a->groups)) < 0) childFail(a, kSetgroups, errno);
    if (sys(SYS_setgid, a->gid) < 0) childFail(a, kSetgid, errno);
    if (sys(SYS_setuid, a->uid) < 0) childFail(a, kSetuid, errno);
  }
  // execvp's rules: go on after ENOENT/ENOTDIR/EACCES, report EACCES if any candidate had it.
  int err = ENOENT;
  bool denied = false;
  for (const char* path : a->candidates) {
    sys(SYS_execve, reinterpret_cast<long>(path), reinterpret_cast<long>(a->argv), reinterpret_cast<long>(a->envp));
    err = errno;
    if (err == EACCES) {
      denied = true;
    } else if (err != ENOENT && err != ENOTDIR) {
      break;
    }
  }
  childFail(a, kExec, denied && (err == ENOENT || err == ENOTDIR) ? EACCES : err);
}

// ---- N-API helpers ----

std::string str(napi_env env, napi_value v) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, nullptr, 0, &len) != napi_ok) throw std::runtime_error("expected a string");
  std::string s(len, '\0');
  napi_get_value_string_utf8(env, v, s.data(), len + 1, &len);
  if (s.find('\0') != std::string::npos) throw std::runtime_error("strings passed to spawnProcess must not contain NUL bytes");
  return s;
}

napi_value get(napi_env env, napi_value obj, const char* name) {
  napi_value v;
  napi_get_named_property(env, obj, name, &v);
  return v;
}

bool isNumber(napi_env env, napi_value v) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  return t == napi_number;
}

double number(napi_env env, napi_value v) {
  double d = 0;
  if (napi_get_value_double(env, v, &d) != napi_ok) throw std::runtime_error("expected a number");
  return d;
}

std::vector<std::string> strings(napi_env env, napi_value arr) {
  uint32_t n = 0;
  if (napi_get_array_length(env, arr, &n) != napi_ok) throw std::runtime_error("expected an array of strings");
  std::vector<std::string> out;
  out.reserve(n);
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    napi_get_element(env, arr, i, &e);
    out.push_back(str(env, e));
  }
  return out;
}

void setNumber(napi_env env, napi_value obj, const char* name, double d) {
  napi_value v;
  napi_create_double(env, d, &v);
  napi_set_named_property(env, obj, name, v);
}

// ---- reaping ----
// A pidfd per child (Linux 5.3+) watched by the JS thread's own event loop: the exit arrives in the
// same loop turn as the EOF of the pipes, with no thread per child. Where pidfd_open is missing, a
// small thread per child blocks in waitpid(pid) and reports through a thread-safe function.

struct PidWatch;
struct ExitReport;

struct Reaper {
  napi_env env;
  napi_ref callback;
  napi_async_context context;
  uv_loop_t* loop;
  std::unordered_set<PidWatch*> watches;
  bool closing;
  bool threadsOnly;  // createReaper(cb, { threads: true }): the fallback, for tests and old kernels
  napi_threadsafe_function tsfn;  // the thread fallback's way back to JS
  int outstanding;                // fallback children not yet reported and still ref'd; JS thread only
  std::unordered_map<pid_t, ExitReport*> threadReports;  // fallback children not yet reported; JS thread only
};

struct PidWatch {
  uv_poll_t poll;
  Reaper* reaper;
  pid_t pid;
  int pidfd;
};

// onExit's arguments: (pid, exit code or null, signal number or null); both null if the status was lost.
void exitArgs(napi_env env, pid_t pid, const int* status, napi_value* args) {
  napi_create_int32(env, pid, &args[0]);
  napi_get_null(env, &args[1]);
  napi_get_null(env, &args[2]);
  if (status && WIFEXITED(*status)) napi_create_int32(env, WEXITSTATUS(*status), &args[1]);
  if (status && WIFSIGNALED(*status)) napi_create_int32(env, WTERMSIG(*status), &args[2]);
}

void watchClosed(uv_handle_t* handle) {
  auto* w = static_cast<PidWatch*>(handle->data);
  close(w->pidfd);
  delete w;
}

void onPidfdReadable(uv_poll_t* poll, int, int) {
  auto* w = static_cast<PidWatch*>(poll->data);
  int status = 0;
  pid_t r;
  do {
    r = waitpid(w->pid, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return;  // readable before the exit was complete: wait for the next wake-up
  Reaper* reaper = w->reaper;
  pid_t pid = w->pid;
  reaper->watches.erase(w);
  uv_poll_stop(poll);
  uv_close(reinterpret_cast<uv_handle_t*>(poll), watchClosed);
  if (reaper->closing) return;
  napi_env env = reaper->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value cb, recv, args[3], result;
  napi_get_reference_value(env, reaper->callback, &cb);
  napi_get_global(env, &recv);
  exitArgs(env, pid, r > 0 ? &status : nullptr, args);
  // make_callback, not call_function: process.nextTick and promise jobs run right after, as for any I/O callback.
  if (napi_make_callback(env, reaper->context, recv, cb, 3, args, &result) == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
  napi_close_handle_scope(env, scope);
}

// The environment goes away (worker exit): stop watching, never call into JS again.
void closeReaper(void* data) {
  auto* reaper = static_cast<Reaper*>(data);
  reaper->closing = true;
  for (PidWatch* w : reaper->watches) {
    uv_poll_stop(&w->poll);
    uv_close(reinterpret_cast<uv_handle_t*>(&w->poll), watchClosed);
  }
  reaper->watches.clear();
}

bool watchPidfd(Reaper* reaper, pid_t pid) {
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return false;
  auto* w = new PidWatch{};
  w->reaper = reaper;
  w->pid = pid;
  w->pidfd = pidfd;
  w->poll.data = w;
  if (uv_poll_init(reaper->loop, &w->poll, pidfd) != 0) {
    close(pidfd);
    delete w;
    return false;
  }
  uv_poll_start(&w->poll, UV_READABLE, onPidfdReadable);
  reaper->watches.insert(w);
  return true;
}

struct ExitReport {
  Reaper* reaper;
  pid_t pid;
  int status;
  bool refd;  // counted in reaper->outstanding; JS thread only
};

void deliverExit(napi_env env, napi_value callback, void*, void* data) {
  std::unique_ptr<ExitReport> r(static_cast<ExitReport*>(data));
  if (env == nullptr) return;  // the environment is shutting down
  // The fallback keeps the event loop alive only while its ref'd children run (like Node's process handles).
  r->reaper->threadReports.erase(r->pid);
  if (r->refd && --r->reaper->outstanding == 0) napi_unref_threadsafe_function(env, r->reaper->tsfn);
  napi_value args[3], undefined;
  napi_get_undefined(env, &undefined);
  exitArgs(env, r->pid, &r->status, args);
  napi_call_function(env, undefined, callback, 3, args, nullptr);
}

void* reapOne(void* data) {
  auto* report = static_cast<ExitReport*>(data);
  int status = 0;
  while (waitpid(report->pid, &status, 0) < 0 && errno == EINTR) {
  }
  report->status = status;
  if (napi_call_threadsafe_function(report->reaper->tsfn, report, napi_tsfn_blocking) != napi_ok) delete report;
  return nullptr;
}

bool startReaperThread(napi_env env, Reaper* reaper, pid_t pid) {
  if (reaper->tsfn == nullptr) {
    napi_value cb, name;
    napi_get_reference_value(env, reaper->callback, &cb);
    napi_create_string_utf8(env, "wrenn-native-reaper", NAPI_AUTO_LENGTH, &name);
    if (napi_create_threadsafe_function(env, cb, nullptr, name, 0, 1, nullptr, nullptr, nullptr, deliverExit, &reaper->tsfn) != napi_ok) {
      reaper->tsfn = nullptr;
      errno = ENOMEM;
      return false;
    }
    napi_unref_threadsafe_function(env, reaper->tsfn);
  }
  auto* report = new ExitReport{reaper, pid, 0, true};
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, kReaperStack < static_cast<size_t>(PTHREAD_STACK_MIN) ? static_cast<size_t>(PTHREAD_STACK_MIN) : kReaperStack);
  // The reaper thread must not take signals meant for the main thread.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t thread;
  int rc = pthread_create(&thread, &attr, reapOne, report);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    delete report;
    errno = rc;
    return false;
  }
  reaper->threadReports[pid] = report;
  if (reaper->outstanding++ == 0) napi_ref_threadsafe_function(env, reaper->tsfn);
  return true;
}

// ChildProcess.ref()/unref(): whether the child's watch keeps the event loop alive.
void setRef(napi_env env, Reaper* reaper, pid_t pid, bool ref) {
  for (PidWatch* w : reaper->watches) {
    if (w->pid != pid) continue;
    if (ref) {
      uv_ref(reinterpret_cast<uv_handle_t*>(&w->poll));
    } else {
      uv_unref(reinterpret_cast<uv_handle_t*>(&w->poll));
    }
    return;
  }
  auto it = reaper->threadReports.find(pid);
  if (it == reaper->threadReports.end() || it->second->refd == ref) return;
  it->second->refd = ref;
  if (ref) {
    if (reaper->outstanding++ == 0) napi_ref_threadsafe_function(env, reaper->tsfn);
  } else if (--reaper->outstanding == 0) {
    napi_unref_threadsafe_function(env, reaper->tsfn);
  }
}

bool startReaper(napi_env env, Reaper* reaper, pid_t pid) {
  return (!reaper->threadsOnly && watchPidfd(reaper, pid)) || startReaperThread(env, reaper, pid);
}

// ---- spawning ----

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  void reset(int fd = -1) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_ = -1;
};

// Moves fd to a number >= min (keeping O_CLOEXEC) so that the child's dups to 0..min-1 never clobber a source.
int above(int fd, int min) {
  if (fd < 0 || fd >= min) return fd;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, min);
  int saved = errno;
  close(fd);
  errno = saved;
  return moved;
}

// The child's end lands >= min; the parent's end stays where it is (O_CLOEXEC, overwritten or closed in the child).
bool makePipe(Fd& childEnd, Fd& parentEnd, bool childReads, int min) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return false;
  int c = childReads ? p[0] : p[1];
  parentEnd.reset(childReads ? p[1] : p[0]);
  childEnd.reset(above(c, min));
  return childEnd.get() >= 0;
}

// One position of the child's fd table, as the caller described it.
struct StdioSlot {
  enum Kind { kIgnore, kPipe, kFd } kind = kIgnore;
  int parentFd = -1;  // kFd: the caller's fd to dup
};

std::vector<StdioSlot> stdioSlots(napi_env env, napi_value opts) {
  std::vector<StdioSlot> slots;
  napi_value v = get(env, opts, "stdio");
  bool isArray = false;
  napi_is_array(env, v, &isArray);
  if (!isArray) {
    // The original options: stdin a pipe or /dev/null, stdout and stderr pipes.
    bool wantStdin = false;
    napi_get_value_bool(env, get(env, opts, "stdin"), &wantStdin);
    slots.resize(3);
    slots[0].kind = wantStdin ? StdioSlot::kPipe : StdioSlot::kIgnore;
    slots[1].kind = slots[2].kind = StdioSlot::kPipe;
    return slots;
  }
  uint32_t n = 0;
  napi_get_array_length(env, v, &n);
  if (n > 1024) throw std::runtime_error("spawnProcess: stdio has more than 1024 entries");
  slots.resize(n < 3 ? 3 : n);  // missing 0-2 are /dev/null, as with child_process
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    napi_get_element(env, v, i, &e);
    if (isNumber(env, e)) {
      double d = number(env, e);
      if (d < 0 || d > INT_MAX || d != static_cast<int>(d)) throw std::runtime_error("spawnProcess: stdio[" + std::to_string(i) + "] is not a valid fd number");
      slots[i].kind = StdioSlot::kFd;
      slots[i].parentFd = static_cast<int>(d);
      continue;
    }
    std::string s = str(env, e);
    if (s == "pipe") {
      slots[i].kind = StdioSlot::kPipe;
    } else if (s != "ignore") {
      throw std::runtime_error("spawnProcess: stdio[" + std::to_string(i) + "] must be 'pipe', 'ignore' or an fd number, not '" + s + "'");
    }
  }
  return slots;
}

// Candidates execvp would try: the file itself when it has a slash, else each PATH entry (of the
// child's environment, like libuv) joined with it.
std::vector<std::string> candidates(const std::string& file, const std::vector<std::string>& env) {
  if (file.find('/') != std::string::npos) return {file};
  std::string path = "/usr/local/bin:/usr/bin:/bin";
  for (const auto& kv : env) {
    if (kv.compare(0, 5, "PATH=") == 0) path = kv.substr(5);
  }
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    out.push_back((dir.empty() ? std::string(".") : dir) + "/" + file);
    start = end + 1;
  }
  return out;
}

std::vector<char*> cstrings(std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

napi_value failure(napi_env env, Stage stage, int err) {
  napi_value o, s;
  napi_create_object(env, &o);
  setNumber(env, o, "errno", err);
  napi_create_string_utf8(env, kStageNames[stage], NAPI_AUTO_LENGTH, &s);
  napi_set_named_property(env, o, "stage", s);
  return o;
}

napi_value spawnWith(napi_env env, Reaper* reaper, napi_value opts) {
  std::string file = str(env, get(env, opts, "file"));
  std::vector<std::string> argv = strings(env, get(env, opts, "argv"));
  std::vector<std::string> envv = strings(env, get(env, opts, "env"));
  std::string cwd = str(env, get(env, opts, "cwd"));
  if (file.empty()) throw std::runtime_error("spawnProcess: file is empty");
  if (argv.empty()) throw std::runtime_error("spawnProcess: argv must hold at least argv[0]");
  std::vector<StdioSlot> slots = stdioSlots(env, opts);
  bool setsid = true;
  napi_value setsidV = get(env, opts, "setsid");
  napi_valuetype setsidT;
  napi_typeof(env, setsidV, &setsidT);
  if (setsidT == napi_boolean) napi_get_value_bool(env, setsidV, &setsid);

  ChildArgs a{};
  a.setsid = setsid;
  napi_value uidV = get(env, opts, "uid");
  a.setIds = isNumber(env, uidV);
  std::vector<gid_t> groups;
  if (a.setIds) {
    a.uid = static_cast<uid_t>(number(env, uidV));
    napi_value gidV = get(env, opts, "gid");
    if (!isNumber(env, gidV)) throw std::runtime_error("spawnProcess: gid is required with uid");
    a.gid = static_cast<gid_t>(number(env, gidV));
    napi_value groupsV = get(env, opts, "groups");
    bool isArray = false;
    napi_is_array(env, groupsV, &isArray);
    if (isArray) {
      uint32_t n = 0;
      napi_get_array_length(env, groupsV, &n);
      for (uint32_t i = 0; i < n; i++) {
        napi_value g;
        napi_get_element(env, groupsV, i, &g);
        groups.push_back(static_cast<gid_t>(number(env, g)));
      }
    }
  }

  std::vector<std::string> paths = candidates(file, envv);
  for (auto& p : paths) a.candidates.push_back(p.c_str());
  std::vector<char*> argvp = cstrings(argv);
  std::vector<char*> envp = cstrings(envv);
  a.argv = argvp.data();
  a.envp = envp.data();
  a.cwd = cwd.c_str();
  a.groups = groups.data();
  a.ngroups = groups.size();

  // Every source the child dups from sits at >= nfds: no dup3 in the child clobbers one still to come.
  const int nfds = static_cast<int>(slots.size());
  std::vector<Fd> childEnds(nfds), parentEnds(nfds);
  std::vector<int> childFds(nfds);
  for (int i = 0; i < nfds; i++) {
    const StdioSlot& slot = slots[i];
    if (slot.kind == StdioSlot::kPipe) {
      if (!makePipe(childEnds[i], parentEnds[i], i == 0, nfds)) return failure(env, kPipe, errno);
    } else if (slot.kind == StdioSlot::kFd) {
      int fd = fcntl(slot.parentFd, F_DUPFD_CLOEXEC, nfds);
      if (fd < 0) {
        if (errno == EBADF) throw std::runtime_error("spawnProcess: stdio[" + std::to_string(i) + "] is fd " + std::to_string(slot.parentFd) + ", which is not open");
        return failure(env, kDup, errno);
      }
      childEnds[i].reset(fd);
    } else {
      childEnds[i].reset(above(open("/dev/null", O_RDWR | O_CLOEXEC), nfds));
      if (childEnds[i].get() < 0) return failure(env, kPipe, errno);
    }
    childFds[i] = childEnds[i].get();
  }
  a.fds = childFds.data();
  a.nfds = nfds;

  std::unique_ptr<char[]> stack(new char[kChildStack]);
  // All signals blocked across clone: no handler of ours may run on the child's side of shared memory.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int savedErrno = errno;  // the child's syscalls write errno of this thread (shared TLS)
  pid_t pid = clone(childMain, stack.get() + kChildStack, CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
  int cloneErrno = errno;
  errno = savedErrno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) return failure(env, kClone, cloneErrno);
  if (a.stage != kNone) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return failure(env, static_cast<Stage>(a.stage), a.err);
  }
  if (!startReaper(env, reaper, pid)) {
    int err = errno;
    kill(pid, SIGKILL);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return failure(env, kReaper, err);
  }
  napi_value o;
  napi_create_object(env, &o);
  setNumber(env, o, "pid", pid);
  napi_value fds;
  napi_create_array_with_length(env, nfds, &fds);
  for (int i = 0; i < nfds; i++) {
    int fd = parentEnds[i].release();
    napi_value n;
    napi_create_int32(env, fd, &n);
    napi_set_element(env, fds, i, n);
    if (i < 3) setNumber(env, o, i == 0 ? "stdin" : i == 1 ? "stdout" : "stderr", fd);
  }
  napi_set_named_property(env, o, "fds", fds);
  return o;
}

}  // namespace

napi_value CreateReaper(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  napi_value cb = argv[0];
  napi_valuetype t = napi_undefined;
  if (argc >= 1) napi_typeof(env, cb, &t);
  if (t != napi_function) {
    napi_throw_type_error(env, nullptr, "createReaper(onExit): onExit must be a function");
    return nullptr;
  }
  // Resolve syscall() through the PLT now, so the vfork child never runs the dynamic linker.
  syscall(SYS_getppid);
  auto* reaper = new Reaper{};
  reaper->env = env;
  if (argc >= 2) {
    napi_valuetype ot;
    napi_typeof(env, argv[1], &ot);
    if (ot == napi_object) napi_get_value_bool(env, get(env, argv[1], "threads"), &reaper->threadsOnly);
  }
  napi_value resource, name;
  napi_create_object(env, &resource);
  napi_create_string_utf8(env, "wrenn-native-reaper", NAPI_AUTO_LENGTH, &name);
  if (napi_get_uv_event_loop(env, &reaper->loop) != napi_ok || napi_create_reference(env, cb, 1, &reaper->callback) != napi_ok ||
      napi_async_init(env, resource, name, &reaper->context) != napi_ok) {
    delete reaper;
    napi_throw_error(env, nullptr, "createReaper: could not set up the exit callback");
    return nullptr;
  }
  napi_add_env_cleanup_hook(env, closeReaper, reaper);
  // Lives as long as the process: reaper threads may still report after JS dropped the handle.
  napi_value ext;
  napi_create_external(env, reaper, nullptr, nullptr, &ext);
  return ext;
}

napi_value SetReaperRef(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value a[3];
  napi_get_cb_info(env, info, &argc, a, nullptr, nullptr);
  napi_valuetype t0 = napi_undefined, t1 = napi_undefined, t2 = napi_undefined;
  if (argc >= 3) {
    napi_typeof(env, a[0], &t0);
    napi_typeof(env, a[1], &t1);
    napi_typeof(env, a[2], &t2);
  }
  if (t0 != napi_external || t1 != napi_number || t2 != napi_boolean) {
    napi_throw_type_error(env, nullptr, "setReaperRef(reaper, pid, ref): pass the handle from createReaper, a pid and a boolean");
    return nullptr;
  }
  Reaper* reaper = nullptr;
  napi_get_value_external(env, a[0], reinterpret_cast<void**>(&reaper));
  int32_t pid = 0;
  bool ref = true;
  napi_get_value_int32(env, a[1], &pid);
  napi_get_value_bool(env, a[2], &ref);
  setRef(env, reaper, pid, ref);
  return nullptr;
}

napi_value SpawnProcess(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value a[2];
  napi_get_cb_info(env, info, &argc, a, nullptr, nullptr);
  napi_valuetype t0 = napi_undefined, t1 = napi_undefined;
  if (argc >= 2) {
    napi_typeof(env, a[0], &t0);
    napi_typeof(env, a[1], &t1);
  }
  if (t0 != napi_external || t1 != napi_object) {
    napi_throw_type_error(env, nullptr, "spawnProcess(reaper, options): pass the handle from createReaper and an options object");
    return nullptr;
  }
  Reaper* reaper = nullptr;
  napi_get_value_external(env, a[0], reinterpret_cast<void**>(&reaper));
  try {
    return spawnWith(env, reaper, a[1]);
  } catch (const std::exception& e) {
    napi_throw_error(env, nullptr, e.what());
    return nullptr;
  }
}

}  // namespace wrenn
