// See fs-as-user.h. envd runs as root and serves file requests for a capsule's users. Checking a
// path's permissions in JS and then opening it as root leaves a window in which a symlink can be
// swapped (issue 14 item 7), so each call here runs on a libuv pool thread that takes on the user's
// fsuid, fsgid and supplementary groups for the duration of the call and then restores its own.
// Linux keeps these per thread (the raw syscalls; glibc's setgroups() would change every thread),
// and a non-zero fsuid also drops the thread's file capabilities (DAC override, fowner, chown),
// so the kernel checks exactly what the user could do on exactly the object it resolves.
// Opens go through openat2 with RESOLVE_NO_MAGICLINKS (and RESOLVE_IN_ROOT under a root fd), and a
// user never opens a non-directory on procfs: /proc/self is envd itself, which the kernel's ptrace
// check lets every thread of envd read (environ, mem) whatever its fsuid.
#include "fs-as-user.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

namespace wrenn {
namespace {

enum class Op { Open, Stat, Mkdir, Rename, RemoveTree, Readdir, Realpath, Entry, List, FdXattrs, FdSetXattrs };

struct Identity {
  bool set = false;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
};

struct EntryData {
  std::string name;
  struct stat st {};
  bool symlink = false;
  std::string target;        // resolved target of a symlink ("" when it does not resolve)
  bool targetOk = false;     // target stat succeeded
  struct stat targetSt {};
  std::vector<std::pair<std::string, std::string>> xattrs;
};

struct Work {
  Op op;
  Identity who;
  std::string path, path2, prefix;
  int flags = 0, mode = 0, dirfd = AT_FDCWD, fd = -1;
  bool inRoot = false, follow = true;
  std::vector<std::pair<std::string, std::string>> set;
  // results
  int err = 0;
  int outFd = -1;
  struct stat st {};
  std::string outPath;
  std::vector<std::pair<std::string, unsigned char>> names;
  EntryData entry;
  std::vector<EntryData> entries;
  std::vector<std::pair<std::string, std::string>> xattrs;
  napi_deferred deferred = nullptr;
  napi_async_work work = nullptr;
};

// ---- identity switching (this thread only) ----

struct Saved {
  long fsuid = -1, fsgid = -1;
  std::vector<gid_t> groups;
};

void restore(const Saved& s) {
  // Root regains its file capabilities with fsuid 0 first; the calls below need CAP_SETGID, which
  // setfsuid never drops. A thread left with a user's identity would serve Node's own fs calls with
  // it, so a failed restore ends the process rather than continue in an unknown state.
  syscall(SYS_setfsuid, static_cast<uid_t>(s.fsuid));
  syscall(SYS_setfsgid, static_cast<gid_t>(s.fsgid));
  bool ok = syscall(SYS_setfsuid, static_cast<uid_t>(-1)) == s.fsuid &&
            syscall(SYS_setfsgid, static_cast<gid_t>(-1)) == s.fsgid &&
            syscall(SYS_setgroups, s.groups.size(), s.groups.data()) == 0;
  if (!ok) {
    fprintf(stderr, "wrenn-native fsAsUser: cannot restore the thread's identity (%s); aborting\n", strerror(errno));
    abort();
  }
}

int become(const Identity& who, Saved& s) {
  int n = getgroups(0, nullptr);
  if (n < 0) return errno;
  s.groups.resize(static_cast<size_t>(n));
  if (n > 0 && getgroups(n, s.groups.data()) < 0) return errno;
  s.fsuid = syscall(SYS_setfsuid, static_cast<uid_t>(-1));
  s.fsgid = syscall(SYS_setfsgid, static_cast<gid_t>(-1));
  if (syscall(SYS_setgroups, who.groups.size(), who.groups.data()) != 0) {
    // A user namespace with setgroups denied: go on only if the thread's own groups give nothing
    // the user's would not (e.g. none at all).
    int e = errno;
    for (gid_t g : s.groups) {
      bool theirs = false;
      for (gid_t u : who.groups) theirs = theirs || u == g;
      if (!theirs) return e;
    }
  }
  syscall(SYS_setfsgid, who.gid);
  syscall(SYS_setfsuid, who.uid);
  // setfsuid/setfsgid report no error: read the ids back.
  if (syscall(SYS_setfsuid, static_cast<uid_t>(-1)) != static_cast<long>(who.uid) ||
      syscall(SYS_setfsgid, static_cast<gid_t>(-1)) != static_cast<long>(who.gid)) {
    restore(s);
    return EPERM;
  }
  return 0;
}

// ---- the calls ----

int openPath(int dirfd, const std::string& path, int flags, int mode, bool inRoot, bool asUser, int* out) {
  struct open_how how {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  // O_TMPFILE includes O_DIRECTORY's bit: test all of it.
  how.mode = ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) ? static_cast<uint64_t>(mode) : 0;
  how.resolve = RESOLVE_NO_MAGICLINKS | (inRoot ? RESOLVE_IN_ROOT : 0);
  int fd = static_cast<int>(syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof how));
  if (fd < 0 && errno == ENOSYS) {
    if (inRoot) return ENOSYS;  // no safe way to stay under the root without openat2
    fd = openat(dirfd, path.c_str(), flags | O_CLOEXEC, mode);
  }
  if (fd < 0) return errno;
  if (asUser) {
    struct statfs sfs {};
    struct stat st {};
    if (fstatfs(fd, &sfs) == 0 && sfs.f_type == PROC_SUPER_MAGIC && fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode)) {
      close(fd);
      return EACCES;
    }
  }
  *out = fd;
  return 0;
}

/** Names and d_types of the directory fd (consumed: closed here). */
int readNames(int fd, std::vector<std::pair<std::string, unsigned char>>& out) {
  DIR* d = fdopendir(fd);
  if (!d) {
    int e = errno;
    close(fd);
    return e;
  }
  errno = 0;
  while (struct dirent* de = readdir(d)) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    out.emplace_back(de->d_name, de->d_type);
  }
  int e = errno;
  closedir(d);
  return e;
}

bool valueOf(ssize_t (*get)(const char*, const char*, void*, size_t), const char* path, const std::string& name, std::string& value) {
  for (int tries = 0; tries < 3; tries++) {
    ssize_t n = get(path, name.c_str(), nullptr, 0);
    if (n < 0) return false;
    value.resize(static_cast<size_t>(n));
    n = get(path, name.c_str(), value.data(), value.size());
    if (n >= 0) {
      value.resize(static_cast<size_t>(n));
      return true;
    }
    if (errno != ERANGE) return false;
  }
  return false;
}

std::vector<std::string> splitNames(const std::string& list, const std::string& prefix) {
  std::vector<std::string> out;
  for (size_t i = 0; i < list.size();) {
    size_t end = list.find('\0', i);
    if (end == std::string::npos) end = list.size();
    std::string name = list.substr(i, end - i);
    if (name.compare(0, prefix.size(), prefix) == 0) out.push_back(name);
    i = end + 1;
  }
  return out;
}

/** The prefix's extended attributes of path (symlinks followed); none when unreadable or unsupported. */
void pathXattrs(const std::string& path, const std::string& prefix, std::vector<std::pair<std::string, std::string>>& out) {
  std::string list;
  for (int tries = 0; tries < 3; tries++) {
    ssize_t n = listxattr(path.c_str(), nullptr, 0);
    if (n <= 0) return;
    list.resize(static_cast<size_t>(n));
    n = listxattr(path.c_str(), list.data(), list.size());
    if (n >= 0) {
      list.resize(static_cast<size_t>(n));
      break;
    }
    if (errno != ERANGE) return;
    list.clear();
  }
  for (const auto& name : splitNames(list, prefix)) {
    std::string value;
    if (valueOf(getxattr, path.c_str(), name, value)) out.emplace_back(name, value);
  }
}

int fdXattrs(int fd, const std::string& prefix, std::vector<std::pair<std::string, std::string>>& out) {
  std::string list;
  for (int tries = 0;; tries++) {
    ssize_t n = flistxattr(fd, nullptr, 0);
    if (n < 0) return errno;
    list.resize(static_cast<size_t>(n));
    n = flistxattr(fd, list.data(), list.size());
    if (n >= 0) {
      list.resize(static_cast<size_t>(n));
      break;
    }
    if (errno != ERANGE || tries == 3) return errno;
  }
  for (const auto& name : splitNames(list, prefix)) {
    std::string value;
    for (int tries = 0; tries < 3; tries++) {
      ssize_t n = fgetxattr(fd, name.c_str(), nullptr, 0);
      if (n < 0) break;
      value.resize(static_cast<size_t>(n));
      n = fgetxattr(fd, name.c_str(), value.data(), value.size());
      if (n >= 0) {
        value.resize(static_cast<size_t>(n));
        out.emplace_back(name, value);
        break;
      }
      if (errno != ERANGE) break;
    }
  }
  return 0;
}

/** Replaces the prefix's attributes of fd with exactly `set` (the caller reads them back). */
int fdSetXattrs(int fd, const std::string& prefix, const std::vector<std::pair<std::string, std::string>>& set) {
  std::vector<std::pair<std::string, std::string>> existing;
  int e = fdXattrs(fd, prefix, existing);
  if (e) return e;
  for (const auto& kv : existing) {
    bool keep = false;
    for (const auto& s : set) keep = keep || s.first == kv.first;
    if (!keep && fremovexattr(fd, kv.first.c_str()) != 0 && errno != ENODATA) return errno;
  }
  for (const auto& s : set) {
    if (fsetxattr(fd, s.first.c_str(), s.second.data(), s.second.size(), 0) != 0) return errno;
  }
  return 0;
}

/** lstat, symlink target, metadata of path: one file entry as E2B's EntryInfo needs it. */
int entryOf(const std::string& path, const std::string& prefix, EntryData& e) {
  if (fstatat(AT_FDCWD, path.c_str(), &e.st, AT_SYMLINK_NOFOLLOW) != 0) return errno;
  if (S_ISLNK(e.st.st_mode)) {
    e.symlink = true;
    if (char* r = realpath(path.c_str(), nullptr)) {
      e.target = r;
      free(r);
    }
    e.targetOk = stat(path.c_str(), &e.targetSt) == 0;
  }
  if (!prefix.empty()) pathXattrs(path, prefix, e.xattrs);
  return 0;
}

/** rm -rf of the directory fd's contents (fd consumed), by names relative to it. */
int removeContents(int fd, int depth) {
  if (depth > 512) {
    close(fd);
    return ELOOP;
  }
  std::vector<std::pair<std::string, unsigned char>> names;
  int e = readNames(dup(fd), names);
  if (e) {
    close(fd);
    return e;
  }
  for (const auto& [name, type] : names) {
    bool dir = type == DT_DIR;
    if (type == DT_UNKNOWN) {
      struct stat st {};
      if (fstatat(fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue;
        e = errno;
        break;
      }
      dir = S_ISDIR(st.st_mode);
    }
    if (dir) {
      int sub = openat(fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0) {
        if (errno == ENOENT) continue;
        e = errno;
        break;
      }
      e = removeContents(sub, depth + 1);
      if (e) break;
    }
    if (unlinkat(fd, name.c_str(), dir ? AT_REMOVEDIR : 0) != 0 && errno != ENOENT) {
      e = errno;
      break;
    }
  }
  close(fd);
  return e;
}

int removeTree(const std::string& path) {
  struct stat st {};
  if (fstatat(AT_FDCWD, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return errno == ENOENT ? 0 : errno;
  if (!S_ISDIR(st.st_mode)) return unlinkat(AT_FDCWD, path.c_str(), 0) == 0 || errno == ENOENT ? 0 : errno;
  int fd = openat(AT_FDCWD, path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno;
  int e = removeContents(fd, 0);
  if (e) return e;
  return unlinkat(AT_FDCWD, path.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT ? 0 : errno;
}

int run(Work& w) {
  switch (w.op) {
    case Op::Open:
      return openPath(w.dirfd, w.path, w.flags, w.mode, w.inRoot, w.who.set, &w.outFd);
    case Op::Stat:
      return fstatat(AT_FDCWD, w.path.c_str(), &w.st, w.follow ? 0 : AT_SYMLINK_NOFOLLOW) == 0 ? 0 : errno;
    case Op::Mkdir:
      return mkdirat(AT_FDCWD, w.path.c_str(), static_cast<mode_t>(w.mode)) == 0 ? 0 : errno;
    case Op::Rename:
      return renameat(AT_FDCWD, w.path.c_str(), AT_FDCWD, w.path2.c_str()) == 0 ? 0 : errno;
    case Op::RemoveTree:
      return removeTree(w.path);
    case Op::Readdir: {
      int fd = -1;
      int e = openPath(AT_FDCWD, w.path, O_RDONLY | O_DIRECTORY, 0, false, w.who.set, &fd);
      return e ? e : readNames(fd, w.names);
    }
    case Op::Realpath: {
      char* r = realpath(w.path.c_str(), nullptr);
      if (!r) return errno;
      w.outPath = r;
      free(r);
      return 0;
    }
    case Op::Entry:
      return entryOf(w.path, w.prefix, w.entry);
    case Op::List: {
      int fd = -1;
      int e = openPath(AT_FDCWD, w.path, O_RDONLY | O_DIRECTORY, 0, false, w.who.set, &fd);
      if (!e) e = readNames(fd, w.names);
      if (e) return e;
      std::string dir = w.path == "/" ? "" : w.path;
      for (const auto& n : w.names) {
        EntryData ed;
        int ee = entryOf(dir + "/" + n.first, w.prefix, ed);
        if (ee == ENOENT) continue;  // vanished meanwhile
        if (ee) return ee;
        ed.name = n.first;
        w.entries.push_back(std::move(ed));
      }
      return 0;
    }
    case Op::FdXattrs:
      return fdXattrs(w.fd, w.prefix, w.xattrs);
    case Op::FdSetXattrs: {
      int e = fdSetXattrs(w.fd, w.prefix, w.set);
      return e ? e : fdXattrs(w.fd, w.prefix, w.xattrs);
    }
  }
  return EINVAL;
}

void execute(napi_env, void* data) {
  Work& w = *static_cast<Work*>(data);
  Saved saved;
  if (w.who.set) {
    w.err = become(w.who, saved);
    if (w.err) return;
  }
  w.err = run(w);
  if (w.who.set) restore(saved);
}

// ---- N-API ----

napi_value num(napi_env env, double d) {
  napi_value v;
  napi_create_double(env, d, &v);
  return v;
}

napi_value str(napi_env env, const std::string& s) {
  napi_value v;
  napi_create_string_utf8(env, s.data(), s.size(), &v);
  return v;
}

napi_value statObject(napi_env env, const struct stat& st) {
  napi_value o;
  napi_create_object(env, &o);
  napi_set_named_property(env, o, "mode", num(env, st.st_mode));
  napi_set_named_property(env, o, "uid", num(env, st.st_uid));
  napi_set_named_property(env, o, "gid", num(env, st.st_gid));
  napi_set_named_property(env, o, "size", num(env, static_cast<double>(st.st_size)));
  napi_set_named_property(env, o, "ino", num(env, static_cast<double>(st.st_ino)));
  napi_set_named_property(env, o, "nlink", num(env, static_cast<double>(st.st_nlink)));
  napi_set_named_property(env, o, "mtimeSec", num(env, static_cast<double>(st.st_mtim.tv_sec)));
  napi_set_named_property(env, o, "mtimeNsec", num(env, static_cast<double>(st.st_mtim.tv_nsec)));
  return o;
}

napi_value xattrArray(napi_env env, const std::vector<std::pair<std::string, std::string>>& xs) {
  napi_value arr;
  napi_create_array_with_length(env, xs.size(), &arr);
  for (size_t i = 0; i < xs.size(); i++) {
    napi_value pair, buf;
    napi_create_array_with_length(env, 2, &pair);
    napi_set_element(env, pair, 0, str(env, xs[i].first));
    napi_create_buffer_copy(env, xs[i].second.size(), xs[i].second.data(), nullptr, &buf);
    napi_set_element(env, pair, 1, buf);
    napi_set_element(env, arr, i, pair);
  }
  return arr;
}

napi_value entryObject(napi_env env, const EntryData& e) {
  napi_value o = statObject(env, e.st);
  if (!e.name.empty()) napi_set_named_property(env, o, "name", str(env, e.name));
  if (e.symlink) {
    napi_set_named_property(env, o, "target", str(env, e.target));
    if (e.targetOk) napi_set_named_property(env, o, "targetStat", statObject(env, e.targetSt));
  }
  napi_set_named_property(env, o, "xattrs", xattrArray(env, e.xattrs));
  return o;
}

void complete(napi_env env, napi_status, void* data) {
  std::unique_ptr<Work> w(static_cast<Work*>(data));
  napi_value o;
  napi_create_object(env, &o);
  napi_set_named_property(env, o, "errno", num(env, w->err));
  if (!w->err) {
    switch (w->op) {
      case Op::Open:
        napi_set_named_property(env, o, "fd", num(env, w->outFd));
        break;
      case Op::Stat:
        napi_set_named_property(env, o, "stat", statObject(env, w->st));
        break;
      case Op::Realpath:
        napi_set_named_property(env, o, "path", str(env, w->outPath));
        break;
      case Op::Readdir: {
        napi_value arr;
        napi_create_array_with_length(env, w->names.size(), &arr);
        for (size_t i = 0; i < w->names.size(); i++) napi_set_element(env, arr, i, str(env, w->names[i].first));
        napi_set_named_property(env, o, "names", arr);
        break;
      }
      case Op::Entry:
        napi_set_named_property(env, o, "entry", entryObject(env, w->entry));
        break;
      case Op::List: {
        napi_value arr;
        napi_create_array_with_length(env, w->entries.size(), &arr);
        for (size_t i = 0; i < w->entries.size(); i++) napi_set_element(env, arr, i, entryObject(env, w->entries[i]));
        napi_set_named_property(env, o, "entries", arr);
        break;
      }
      case Op::FdXattrs:
      case Op::FdSetXattrs:
        napi_set_named_property(env, o, "xattrs", xattrArray(env, w->xattrs));
        break;
      default:
        break;
    }
  }
  napi_resolve_deferred(env, w->deferred, o);
  napi_delete_async_work(env, w->work);
}

bool has(napi_env env, napi_value obj, const char* name, napi_value* out) {
  bool present = false;
  napi_has_named_property(env, obj, name, &present);
  if (!present) return false;
  napi_get_named_property(env, obj, name, out);
  napi_valuetype t;
  napi_typeof(env, *out, &t);
  return t != napi_undefined && t != napi_null;
}

bool getString(napi_env env, napi_value obj, const char* name, std::string& out) {
  napi_value v;
  if (!has(env, obj, name, &v)) return false;
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, nullptr, 0, &len) != napi_ok) return false;
  out.assign(len, '\0');
  napi_get_value_string_utf8(env, v, out.data(), len + 1, &len);
  return true;
}

bool getInt(napi_env env, napi_value obj, const char* name, int64_t& out) {
  napi_value v;
  if (!has(env, obj, name, &v)) return false;
  return napi_get_value_int64(env, v, &out) == napi_ok;
}

bool getBool(napi_env env, napi_value obj, const char* name) {
  napi_value v;
  bool b = false;
  if (has(env, obj, name, &v)) napi_get_value_bool(env, v, &b);
  return b;
}

napi_value fail(napi_env env, const char* msg) {
  napi_throw_type_error(env, nullptr, msg);
  return nullptr;
}

Op opOf(const std::string& s, bool& ok) {
  static const std::pair<const char*, Op> ops[] = {
      {"open", Op::Open},         {"stat", Op::Stat},       {"mkdir", Op::Mkdir},       {"rename", Op::Rename},
      {"removeTree", Op::RemoveTree}, {"readdir", Op::Readdir}, {"realpath", Op::Realpath}, {"entry", Op::Entry},
      {"list", Op::List},         {"fdXattrs", Op::FdXattrs}, {"fdSetXattrs", Op::FdSetXattrs},
  };
  for (const auto& [name, op] : ops) {
    if (s == name) {
      ok = true;
      return op;
    }
  }
  ok = false;
  return Op::Open;
}

// fsAsUser({ op, path, path2, flags, mode, dirfd, inRoot, follow, fd, prefix, set, uid, gid, groups })
// -> Promise<{ errno, ...result }>; errno 0 on success. Without uid the call keeps envd's identity.
napi_value FsAsUser(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value req;
  napi_get_cb_info(env, info, &argc, &req, nullptr, nullptr);
  napi_valuetype t;
  if (argc < 1 || napi_typeof(env, req, &t) != napi_ok || t != napi_object) return fail(env, "fsAsUser(request): request must be an object");
  auto w = std::make_unique<Work>();
  std::string op;
  bool ok = false;
  if (!getString(env, req, "op", op) || (w->op = opOf(op, ok), !ok)) return fail(env, "fsAsUser: unknown op");
  getString(env, req, "path", w->path);
  getString(env, req, "path2", w->path2);
  getString(env, req, "prefix", w->prefix);
  if (w->path.find('\0') != std::string::npos || w->path2.find('\0') != std::string::npos)
    return fail(env, "fsAsUser: paths must not contain NUL bytes");
  int64_t n = 0;
  if (getInt(env, req, "flags", n)) w->flags = static_cast<int>(n);
  if (getInt(env, req, "mode", n)) w->mode = static_cast<int>(n);
  if (getInt(env, req, "dirfd", n)) w->dirfd = static_cast<int>(n);
  if (getInt(env, req, "fd", n)) w->fd = static_cast<int>(n);
  w->inRoot = getBool(env, req, "inRoot");
  napi_value v;
  if (has(env, req, "follow", &v)) napi_get_value_bool(env, v, &w->follow);
  if (w->inRoot && w->dirfd == AT_FDCWD) return fail(env, "fsAsUser: inRoot needs a dirfd");
  if (has(env, req, "set", &v)) {
    uint32_t len = 0;
    napi_get_array_length(env, v, &len);
    for (uint32_t i = 0; i < len; i++) {
      napi_value pair, k, val;
      napi_get_element(env, v, i, &pair);
      napi_get_element(env, pair, 0, &k);
      napi_get_element(env, pair, 1, &val);
      size_t kl = 0, vl = 0;
      if (napi_get_value_string_utf8(env, k, nullptr, 0, &kl) != napi_ok ||
          napi_get_value_string_utf8(env, val, nullptr, 0, &vl) != napi_ok)
        return fail(env, "fsAsUser: set must be [name, value] string pairs");
      std::string ks(kl, '\0'), vs(vl, '\0');
      napi_get_value_string_utf8(env, k, ks.data(), kl + 1, &kl);
      napi_get_value_string_utf8(env, val, vs.data(), vl + 1, &vl);
      w->set.emplace_back(ks, vs);
    }
  }
  if (getInt(env, req, "uid", n)) {
    if (n < 0 || n > 0xfffffffeLL) return fail(env, "fsAsUser: uid out of range");
    w->who.set = true;
    w->who.uid = static_cast<uid_t>(n);
    int64_t g = 0;
    if (!getInt(env, req, "gid", g) || g < 0 || g > 0xfffffffeLL) return fail(env, "fsAsUser: uid needs a gid");
    w->who.gid = static_cast<gid_t>(g);
    if (has(env, req, "groups", &v)) {
      uint32_t len = 0;
      napi_get_array_length(env, v, &len);
      if (len > 65536) return fail(env, "fsAsUser: too many groups");
      for (uint32_t i = 0; i < len; i++) {
        napi_value e;
        int64_t gid = 0;
        napi_get_element(env, v, i, &e);
        if (napi_get_value_int64(env, e, &gid) != napi_ok || gid < 0 || gid > 0xfffffffeLL) return fail(env, "fsAsUser: bad group id");
        w->who.groups.push_back(static_cast<gid_t>(gid));
      }
    }
  }
  napi_value promise, name;
  if (napi_create_promise(env, &w->deferred, &promise) != napi_ok) return fail(env, "fsAsUser: cannot create a promise");
  napi_create_string_utf8(env, "wrenn.fsAsUser", NAPI_AUTO_LENGTH, &name);
  Work* raw = w.get();
  if (napi_create_async_work(env, nullptr, name, execute, complete, raw, &raw->work) != napi_ok ||
      napi_queue_async_work(env, raw->work) != napi_ok)
    return fail(env, "fsAsUser: cannot queue the call");
  w.release();
  return promise;
}

}  // namespace

void registerFsAsUser(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"fsAsUser", nullptr, FsAsUser, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}

}  // namespace wrenn
