// See mounts.h. Every call runs as napi async work (a libuv pool thread) and settles a promise.
#include "mounts.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#ifndef LOOP_CONFIGURE
#define LOOP_CONFIGURE 0x4C0A
#endif

namespace wrenn {
namespace {

struct MountWork {
  napi_async_work work = nullptr;
  napi_deferred deferred = nullptr;
  bool unmount = false;
  bool idmapBind = false;
  std::string image, target, fstype, data;
  std::string idMap;  // idmapBind: "<stored id> <shown id> <count>", the user namespace's uid and gid map
  unsigned long flags = 0;
  int umountFlags = 0;
  // Results.
  int err = 0;
  std::string stage;
  std::string device;
};

// Attaches `image` to a free loop device with autoclear (the device frees itself once its mount
// and our fd are gone). Another process may take the device GET_FREE named first: then try again.
int attachLoop(MountWork* w, int* loopFd) {
  int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
  if (ctl < 0) return w->stage = "open /dev/loop-control", errno;
  int back = open(w->image.c_str(), ((w->flags & MS_RDONLY) ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (back < 0) {
    int e = errno;
    close(ctl);
    return w->stage = "open " + w->image, e;
  }
  int result = EBUSY;
  for (int attempt = 0; attempt < 16 && result == EBUSY; attempt++) {
    int n = ioctl(ctl, LOOP_CTL_GET_FREE);
    if (n < 0) {
      result = errno;
      w->stage = "LOOP_CTL_GET_FREE";
      break;
    }
    std::string dev = "/dev/loop" + std::to_string(n);
    int fd = open(dev.c_str(), ((w->flags & MS_RDONLY) ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (fd < 0) {
      result = errno;
      w->stage = "open " + dev;
      if (result == ENOENT) result = EBUSY;  // udev-less hosts: the node may come a moment later
      continue;
    }
    struct loop_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.fd = static_cast<__u32>(back);
    cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR | ((w->flags & MS_RDONLY) ? LO_FLAGS_READ_ONLY : 0);
    strncpy(reinterpret_cast<char*>(cfg.info.lo_file_name), w->image.c_str(), LO_NAME_SIZE - 1);
    if (ioctl(fd, LOOP_CONFIGURE, &cfg) == 0) {
      *loopFd = fd;
      w->device = dev;
      result = 0;
      break;
    }
    result = errno;
    w->stage = "LOOP_CONFIGURE " + dev;
    close(fd);
  }
  close(back);
  close(ctl);
  return result;
}

int writeAll(const std::string& path, const std::string& text) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t n = write(fd, text.data(), text.size());
  int e = n == static_cast<ssize_t>(text.size()) ? 0 : (n < 0 ? errno : EIO);
  close(fd);
  return e;
}

// A user namespace whose uid and gid maps are `map`, held by the returned fd: a child is cloned
// straight into it (no fork of this process's threads: it only reads a pipe and exits), the maps
// are written while it waits, and it is reaped once the namespace fd is open.
int idmapUserns(MountWork* w, int* nsFd) {
  int hold[2];
  if (pipe2(hold, O_CLOEXEC) < 0) return w->stage = "pipe", errno;
  pid_t c = static_cast<pid_t>(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, nullptr, nullptr, nullptr, nullptr));
  if (c < 0) {
    int e = errno;
    close(hold[0]);
    close(hold[1]);
    return w->stage = "clone(CLONE_NEWUSER)", e;
  }
  if (c == 0) {
    char b;
    close(hold[1]);
    ssize_t r = read(hold[0], &b, 1);  // EOF once the parent holds the namespace
    _exit(r < 0 ? 1 : 0);
  }
  close(hold[0]);
  std::string proc = "/proc/" + std::to_string(c);
  int e = writeAll(proc + "/uid_map", w->idMap + "\n");
  if (e) w->stage = "write " + proc + "/uid_map";
  if (!e && (e = writeAll(proc + "/gid_map", w->idMap + "\n"))) w->stage = "write " + proc + "/gid_map";
  if (!e && (*nsFd = open((proc + "/ns/user").c_str(), O_RDONLY | O_CLOEXEC)) < 0) {
    e = errno;
    w->stage = "open " + proc + "/ns/user";
  }
  close(hold[1]);
  while (waitpid(c, nullptr, 0) < 0 && errno == EINTR) {
  }
  return e;
}

// Binds `image` (a directory) at `target` seen through the idmap, nosuid and nodev: open_tree
// clone, mount_setattr(MOUNT_ATTR_IDMAP), move_mount.
void idmapBind(MountWork* w) {
  int ns = -1;
  if ((w->err = idmapUserns(w, &ns)) != 0) return;
  int tree = open_tree(AT_FDCWD, w->image.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  if (tree < 0) {
    w->err = errno, w->stage = "open_tree " + w->image;
    close(ns);
    return;
  }
  struct mount_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
  attr.userns_fd = static_cast<__u64>(ns);
  if (mount_setattr(tree, "", AT_EMPTY_PATH, &attr, sizeof attr) != 0)
    w->err = errno, w->stage = "idmapped mount of " + w->image + " (mount_setattr)";
  else if (move_mount(tree, "", AT_FDCWD, w->target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0)
    w->err = errno, w->stage = "move_mount " + w->image + " to " + w->target;
  close(tree);
  close(ns);
}

void execute(napi_env, void* data) {
  auto* w = static_cast<MountWork*>(data);
  if (w->idmapBind) return idmapBind(w);
  if (w->unmount) {
    if (umount2(w->target.c_str(), w->umountFlags) != 0) w->err = errno, w->stage = "umount2 " + w->target;
    return;
  }
  int loopFd = -1;
  w->err = attachLoop(w, &loopFd);
  if (w->err != 0) return;
  if (mount(w->device.c_str(), w->target.c_str(), w->fstype.c_str(), w->flags, w->data.empty() ? nullptr : w->data.c_str()) != 0) {
    w->err = errno;
    w->stage = "mount " + w->device + " on " + w->target;
    ioctl(loopFd, LOOP_CLR_FD, 0);
  }
  close(loopFd);  // with autoclear, the mount now holds the device alone
}

void complete(napi_env env, napi_status, void* data) {
  auto* w = static_cast<MountWork*>(data);
  if (w->err == 0) {
    napi_value v;
    napi_create_string_utf8(env, w->device.c_str(), NAPI_AUTO_LENGTH, &v);
    napi_resolve_deferred(env, w->deferred, v);
  } else {
    std::string msg = w->stage + ": " + strerror(w->err);
    napi_value m, e, code;
    napi_create_string_utf8(env, msg.c_str(), NAPI_AUTO_LENGTH, &m);
    napi_create_error(env, nullptr, m, &e);
    napi_create_int32(env, w->err, &code);
    napi_set_named_property(env, e, "errno", code);
    napi_reject_deferred(env, w->deferred, e);
  }
  napi_delete_async_work(env, w->work);
  delete w;
}

bool str(napi_env env, napi_value v, std::string* out) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, nullptr, 0, &len) != napi_ok) return false;
  out->resize(len + 1);
  napi_get_value_string_utf8(env, v, &(*out)[0], len + 1, &len);
  out->resize(len);
  return true;
}

napi_value queue(napi_env env, MountWork* w) {
  napi_value promise, name;
  napi_create_promise(env, &w->deferred, &promise);
  napi_create_string_utf8(env, "wrenn-mount", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, nullptr, name, execute, complete, w, &w->work);
  napi_queue_async_work(env, w->work);
  return promise;
}

// loopMount(image, target, fstype, flags, data) -> Promise<loop device path>
napi_value LoopMount(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value a[5];
  napi_get_cb_info(env, info, &argc, a, nullptr, nullptr);
  auto* w = new MountWork();
  double flags = 0;
  if (argc < 5 || !str(env, a[0], &w->image) || !str(env, a[1], &w->target) || !str(env, a[2], &w->fstype) ||
      napi_get_value_double(env, a[3], &flags) != napi_ok || !str(env, a[4], &w->data)) {
    delete w;
    napi_throw_type_error(env, nullptr, "loopMount(image, target, fstype, flags, data) needs 3 strings, a number and a string");
    return nullptr;
  }
  w->flags = static_cast<unsigned long>(flags);
  return queue(env, w);
}

// unmount(target, flags) -> Promise<void>: umount2(2).
napi_value Unmount(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value a[2];
  napi_get_cb_info(env, info, &argc, a, nullptr, nullptr);
  auto* w = new MountWork();
  w->unmount = true;
  int32_t flags = 0;
  if (argc < 2 || !str(env, a[0], &w->target) || napi_get_value_int32(env, a[1], &flags) != napi_ok) {
    delete w;
    napi_throw_type_error(env, nullptr, "unmount(target, flags) needs a string and a number");
    return nullptr;
  }
  w->umountFlags = flags;
  return queue(env, w);
}

// idmappedBind(source, target, map) -> Promise<void>: see idmapBind.
napi_value IdmappedBind(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value a[3];
  napi_get_cb_info(env, info, &argc, a, nullptr, nullptr);
  auto* w = new MountWork();
  w->idmapBind = true;
  if (argc < 3 || !str(env, a[0], &w->image) || !str(env, a[1], &w->target) || !str(env, a[2], &w->idMap)) {
    delete w;
    napi_throw_type_error(env, nullptr, "idmappedBind(source, target, map) needs 3 strings");
    return nullptr;
  }
  return queue(env, w);
}

}  // namespace

void registerMounts(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"loopMount", nullptr, LoopMount, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"unmount", nullptr, Unmount, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"idmappedBind", nullptr, IdmappedBind, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}

}  // namespace wrenn
