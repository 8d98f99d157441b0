/*
 * wrenn-nsinit: the one small native piece of the namespace runtime.
 *
 * Node cannot call mount(2), pivot_root(2), setns(2) or unshare(2), and util-linux's
 * unshare/nsenter cannot (a) join cgroups before anything runs, (b) mount sysfs/devpts as host
 * root and only then drop into a user namespace, (c) stay behind as a reaping PID 1 that reports
 * when envd answers /health. So this helper does exactly that, with plain syscalls, and nothing
 * else. Compiled from this file on the host with gcc on first use (see nsinit.ts).
 *
 *   wrenn-nsinit start [options] -- ARGV...   boot a capsule, run ARGV as its main process
 *   wrenn-nsinit exec  --pid N [options] -- ARGV...   run ARGV inside capsule N's namespaces
 *   wrenn-nsinit hostname --pid N -- NAME             set capsule N's hostname (root inside cannot)
 *
 * start: fd 3 (if open) is a status pipe: the helper writes "pid <host pid of capsule init>\n",
 * then the init writes "ready\n" once GET <ready-path> on 127.0.0.1:<ready-port> inside the
 * capsule returns 2xx, or "error <reason>\n" and exits. With --ready-fd 1 the main process gets
 * a pipe as fd 3 (and WRENN_READY_FD=3) and says "ready\n" on it itself once it listens: no HTTP
 * poll, no interval to wait out. If it closes the pipe without a word, the HTTP poll takes over.
 *
 * Capsule output: the init's and the main process's stdout/stderr are a pipe whose only reader is
 * the start helper's parent process (host root, outside the capsule), which appends what arrives
 * to the host log (its own stdout, --log PATH) up to --log-max-bytes, then rotates it once to
 * PATH.1 (so at most twice the cap is kept, the newest output last). A capsule that writes faster
 * than one rotation per LOG_ROTATE_MIN_S seconds has the excess dropped, with a marker line
 * saying how much: the host disk sees bounded writes. Nothing inside can reach the host file.
 *
 * Namespace ownership (a deliberate choice): mount, pid, uts, ipc and net namespaces are created
 * (or joined) by host root BEFORE the user namespace, so they belong to the initial user
 * namespace. Root inside the capsule therefore has full capabilities only over its own user
 * namespace (files it owns, setuid/setgid to mapped ids, chown of mapped files) and none over its
 * mounts, hostname or network: it cannot remount, unmount, reconfigure interfaces or set the
 * hostname. Binding ports below 1024 is made possible per network namespace by the
 * net.ipv4.ip_unprivileged_port_start sysctl (passed with --sysctl).
 *
 * Identity (--root-uid N, --layer-idmap MAP): each capsule has a host id range of its own,
 * N..N+65535. The init drops to host uid N before it creates the capsule's user namespace, so
 * that namespace is owned by N and the kernel charges per-user counts (inotify, user namespaces,
 * processes) to N at the top level, not to host root. With --nproc P, RLIMIT_NPROC = P before
 * that: the kernel then holds all of the namespace's tasks to P (see set_nproc). The template layers and the capsule's
 * writable layer stay stored in the canonical range (100000 + u); overlayfs gets them through
 * idmapped mounts (open_tree + mount_setattr MOUNT_ATTR_IDMAP with a user namespace whose map is
 * MAP, e.g. "100000 N 65536"), passed as /proc/self/fd/<n> paths of detached mounts that nothing
 * outside this process can reach. The root filesystem is assembled with fsuid N (every
 * capability kept), so what the set-up creates belongs to root inside.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/capability.h>
#include <sys/fsuid.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "seccomp-policy.h"

#define MAX_LIST 64
#define STATUS_FD 3
#define LOG_ROTATE_MIN_S 10
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

extern char **environ;

static int status_fd = -1;
static struct sock_fprog capsule_filter; /* seccomp-policy.c, built on the host side */
static int trace = 0; /* --trace 1: step timings on stderr (the capsule log) */

static long now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000L + ts.tv_nsec / 1000L;
}

static void step(const char *what) {
  static long last = 0;
  if (!trace) return;
  long t = now_us();
  if (last) fprintf(stderr, "wrenn-nsinit: %-28s %6ld us\n", what, t - last);
  last = t;
}

static void say(const char *fmt, ...) {
  if (status_fd < 0) return;
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n > 0) (void)!write(status_fd, buf, (size_t)(n < (int)sizeof buf ? n : (int)sizeof buf - 1));
}

/* Fatal error: report on stderr and on the status pipe (one line), then exit. */
static void die(const char *fmt, ...) {
  char buf[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  int e = errno;
  fprintf(stderr, "wrenn-nsinit: %s: %s\n", buf, e ? strerror(e) : "failed");
  say("error %s: %s\n", buf, e ? strerror(e) : "failed");
  _exit(125);
}

struct opts {
  const char *netns, *upper, *work, *rootfs, *hostname, *uid_map, *gid_map, *ready_path, *cwd, *layer_idmap, *nofile, *nproc, *log;
  const char *boot_id; /* --boot-id FILE: this boot's /proc/sys/kernel/random/boot_id, bound read-only */
  long log_max;
  const char *seccomp_allow; /* --seccomp-allow userns,perf: per-template seccomp switches */
  const char *lowers[MAX_LIST], *cgroups[MAX_LIST], *binds[MAX_LIST], *tmpfs[MAX_LIST], *sysctls[MAX_LIST], *volumes[MAX_LIST];
  int bind_rw[MAX_LIST];
  int n_lowers, n_cgroups, n_binds, n_tmpfs, n_sysctls, n_volumes;
  int ready_port, ready_fd, ready_timeout_ms, root_uid, pts_gid, pid, uid, gid;
  char **argv;
};

static void push(const char **list, int *n, const char *v) {
  if (*n >= MAX_LIST) { errno = E2BIG; die("too many list options"); }
  list[(*n)++] = v;
}

static void parse(int argc, char **argv, struct opts *o) {
  memset(o, 0, sizeof *o);
  o->ready_path = "/health";
  o->ready_timeout_ms = 30000;
  o->cwd = "/";
  o->pts_gid = -1;
  o->log_max = 1L << 20;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) { o->argv = &argv[i + 1]; break; }
    if (i + 1 >= argc) { errno = EINVAL; die("option %s needs a value", a); }
    const char *v = argv[++i];
    if (!strcmp(a, "--netns")) o->netns = v;
    else if (!strcmp(a, "--lower")) push(o->lowers, &o->n_lowers, v);
    else if (!strcmp(a, "--upper")) o->upper = v;
    else if (!strcmp(a, "--work")) o->work = v;
    else if (!strcmp(a, "--rootfs")) o->rootfs = v;
    else if (!strcmp(a, "--hostname")) o->hostname = v;
    else if (!strcmp(a, "--uid-map")) o->uid_map = v;
    else if (!strcmp(a, "--gid-map")) o->gid_map = v;
    else if (!strcmp(a, "--root-uid")) o->root_uid = atoi(v);
    else if (!strcmp(a, "--pts-gid")) o->pts_gid = atoi(v);
    else if (!strcmp(a, "--layer-idmap")) o->layer_idmap = v;
    else if (!strcmp(a, "--nofile")) o->nofile = v;
    else if (!strcmp(a, "--nproc")) o->nproc = v;
    else if (!strcmp(a, "--cgroup")) push(o->cgroups, &o->n_cgroups, v);
    else if (!strcmp(a, "--bind")) { o->bind_rw[o->n_binds < MAX_LIST ? o->n_binds : 0] = 0; push(o->binds, &o->n_binds, v); }
    else if (!strcmp(a, "--bind-rw")) { o->bind_rw[o->n_binds < MAX_LIST ? o->n_binds : 0] = 1; push(o->binds, &o->n_binds, v); }
    else if (!strcmp(a, "--bind-rw-idmapped")) { o->bind_rw[o->n_binds < MAX_LIST ? o->n_binds : 0] = 2; push(o->binds, &o->n_binds, v); }
    else if (!strcmp(a, "--tmpfs")) push(o->tmpfs, &o->n_tmpfs, v);
    else if (!strcmp(a, "--volume")) push(o->volumes, &o->n_volumes, v);
    else if (!strcmp(a, "--sysctl")) push(o->sysctls, &o->n_sysctls, v);
    else if (!strcmp(a, "--ready-port")) o->ready_port = atoi(v);
    else if (!strcmp(a, "--ready-path")) o->ready_path = v;
    else if (!strcmp(a, "--ready-fd")) o->ready_fd = atoi(v);
    else if (!strcmp(a, "--ready-timeout-ms")) o->ready_timeout_ms = atoi(v);
    else if (!strcmp(a, "--cwd")) o->cwd = v;
    else if (!strcmp(a, "--pid")) o->pid = atoi(v);
    else if (!strcmp(a, "--uid")) o->uid = atoi(v);
    else if (!strcmp(a, "--gid")) o->gid = atoi(v);
    else if (!strcmp(a, "--trace")) trace = atoi(v);
    else if (!strcmp(a, "--seccomp-allow")) o->seccomp_allow = v;
    else if (!strcmp(a, "--log")) o->log = v;
    else if (!strcmp(a, "--boot-id")) o->boot_id = v;
    else if (!strcmp(a, "--log-max-bytes")) o->log_max = atol(v);
    else { errno = EINVAL; die("unknown option %s", a); }
  }
  if (!o->argv || !o->argv[0]) { errno = EINVAL; die("missing -- ARGV"); }
  if (o->log_max < 4096) { errno = EINVAL; die("--log-max-bytes must be at least 4096"); }
}

static void write_file(const char *path, const char *data) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) die("open %s", path);
  size_t len = strlen(data);
  if (write(fd, data, len) != (ssize_t)len) die("write %s to %s", data, path);
  close(fd);
}

/* Moves this process into each cgroup, so that everything it starts is limited from birth.
 * It is single-threaded, so moving the thread (the "tasks" file) moves the process; unlike
 * cgroup.procs this avoids the kernel's thread-group lock and its RCU grace period per write. */
static void join_cgroups(struct opts *o) {
  char p[PATH_MAX];
  for (int i = 0; i < o->n_cgroups; i++) {
    snprintf(p, sizeof p, "%s/tasks", o->cgroups[i]);
    write_file(p, "0");
  }
}

static void set_loopback_up(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) die("socket");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "lo");
  if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) die("get flags of lo");
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) die("bring lo up");
  close(s);
}

/* "net/ipv4/ip_unprivileged_port_start=0": /proc/sys/net is per network namespace. */
static void apply_sysctls(struct opts *o) {
  char p[PATH_MAX];
  for (int i = 0; i < o->n_sysctls; i++) {
    const char *eq = strchr(o->sysctls[i], '=');
    if (!eq) { errno = EINVAL; die("bad --sysctl %s", o->sysctls[i]); }
    snprintf(p, sizeof p, "/proc/sys/%.*s", (int)(eq - o->sysctls[i]), o->sysctls[i]);
    write_file(p, eq + 1);
  }
}

static void mkdirs(const char *path, mode_t mode) {
  char buf[PATH_MAX];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(buf, mode) < 0 && errno != EEXIST) die("mkdir %s", buf);
    *p = '/';
  }
  if (mkdir(buf, mode) < 0 && errno != EEXIST) die("mkdir %s", buf);
}

static void in_root(char *out, const char *rootfs, const char *path) {
  snprintf(out, PATH_MAX, "%s%s", rootfs, path);
}

static void mount_or_die(const char *src, const char *dst, const char *type, unsigned long flags, const char *data) {
  if (mount(src, dst, type, flags, data) < 0) die("mount %s on %s (%s)", src ? src : "-", dst, type ? type : "bind");
}

/* The child idmap_userns left to exit on its own; reaped once the capsule is up (reap_idmap_child). */
static pid_t idmap_child = 0;

static void reap_idmap_child(void) {
  if (idmap_child > 0) while (waitpid(idmap_child, NULL, 0) < 0 && errno == EINTR) {}
  idmap_child = 0;
}

/* A user namespace with MAP as its uid and gid map, for idmapped mounts: a child is cloned
 * straight into a new one (no race with the map writes), the namespace is kept through an fd,
 * and the child exits. It is not waited for here (on a busy host that wait is a trip through the
 * scheduler on the create path); the parent reaps it later. Must run before CLONE_NEWPID is
 * unshared (the child would be PID 1). */
static int idmap_userns(const char *map) {
  int hold[2];
  if (pipe2(hold, O_CLOEXEC) < 0) die("pipe");
  pid_t c = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, NULL);
  if (c < 0) die("new user namespace for idmapped layers");
  if (c == 0) {
    char b;
    close(hold[1]);
    (void)!read(hold[0], &b, 1); /* EOF once the parent holds the namespace */
    _exit(0);
  }
  close(hold[0]);
  char p[64];
  snprintf(p, sizeof p, "/proc/%d/uid_map", (int)c);
  write_file(p, map);
  snprintf(p, sizeof p, "/proc/%d/gid_map", (int)c);
  write_file(p, map);
  snprintf(p, sizeof p, "/proc/%d/ns/user", (int)c);
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("open %s", p);
  close(hold[1]);
  idmap_child = c;
  return fd;
}

/* A detached clone of DIR whose files show through the idmap of userns_fd. */
static int idmapped_tree(const char *dir, int userns_fd) {
  int t = open_tree(AT_FDCWD, dir, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  if (t < 0) die("open_tree %s", dir);
  struct mount_attr attr = {.attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (__u64)userns_fd};
  if (mount_setattr(t, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0)
    die("idmapped mount of %s (the kernel or this file system does not support idmapped mounts)", dir);
  return t;
}

/* The idmapped detached layer mounts the overlay was made from. Closing the last fd of a detached
 * mount dissolves it, which waits for an RCU grace period (about a millisecond each here): the
 * helper closes them once the init runs (close_layer_fds), off the create path; the init closes
 * its inherited copies at once, so nothing of the host's file system stays reachable inside. */
static int layer_fds[MAX_LIST + 1], n_layer_fds = 0;

static void close_layer_fds(void) {
  for (int i = 0; i < n_layer_fds; i++) close(layer_fds[i]);
  n_layer_fds = 0;
}

/* The root filesystem: the template layers read-only under the capsule's own upper layer. With
 * a layer idmap (userns >= 0) every layer is an idmapped detached mount named /proc/self/fd/<n>. */
static void mount_overlay(struct opts *o, int userns) {
  char data[4096];
  int *fds = layer_fds, n_fds = 0;
  int n = snprintf(data, sizeof data, "lowerdir=");
  for (int i = 0; i < o->n_lowers; i++) {
    if (userns >= 0) {
      fds[n_fds] = idmapped_tree(o->lowers[i], userns);
      n += snprintf(data + n, sizeof data - n, "%s/proc/self/fd/%d", i ? ":" : "", fds[n_fds++]);
    } else {
      n += snprintf(data + n, sizeof data - n, "%s%s", i ? ":" : "", o->lowers[i]);
    }
  }
  if (userns >= 0) {
    /* upper and work must be on one mount: idmap the directory that holds both. */
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", o->upper);
    char *slash = strrchr(dir, '/');
    size_t len = slash ? (size_t)(slash - dir) : 0;
    if (!len || strncmp(o->work, dir, len) != 0 || o->work[len] != '/' || strchr(o->work + len + 1, '/')) {
      errno = EINVAL;
      die("--upper %s and --work %s must be in one directory", o->upper, o->work);
    }
    *slash = 0;
    fds[n_fds] = idmapped_tree(dir, userns);
    n += snprintf(data + n, sizeof data - n, ",upperdir=/proc/self/fd/%d/%s,workdir=/proc/self/fd/%d/%s", fds[n_fds],
                  slash + 1, fds[n_fds], o->work + len + 1);
    n_fds++;
  } else {
    n += snprintf(data + n, sizeof data - n, ",upperdir=%s,workdir=%s", o->upper, o->work);
  }
  if (n >= (int)sizeof data) { errno = ENAMETOOLONG; die("overlay options too long (too many layers)"); }
  if (mount("overlay", o->rootfs, "overlay", 0, data) < 0) {
    if (n_fds) die("mount overlay on %s with idmapped layers (needs Linux >= 6.15 for detached layers)", o->rootfs);
    die("mount overlay on %s", o->rootfs);
  }
  n_layer_fds = n_fds; /* closed by close_layer_fds */
}

/* Host root working as the capsule's root for file ownership: fsuid/fsgid = id (what the set-up
 * creates belongs to root inside, and the idmapped layers accept it), every capability kept
 * (moving the fsuid away from 0 drops the file capabilities from the effective set). 0 undoes it. */
static void act_as_owner(int id) {
  setfsgid((gid_t)id);
  setfsuid((uid_t)id);
  struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct d[2];
  if (syscall(SYS_capget, &h, d) < 0) die("capget");
  d[0].effective = d[0].permitted;
  d[1].effective = d[1].permitted;
  if (syscall(SYS_capset, &h, d) < 0) die("capset");
}

/* "SOFT:HARD": RLIMIT_NOFILE of the capsule's processes (root inside cannot raise the hard limit). */
static void set_nofile(const char *spec) {
  if (!spec) return;
  struct rlimit r;
  char *end;
  r.rlim_cur = strtoul(spec, &end, 10);
  if (*end != ':') { errno = EINVAL; die("bad --nofile %s (want SOFT:HARD)", spec); }
  r.rlim_max = strtoul(end + 1, &end, 10);
  if (*end || r.rlim_cur > r.rlim_max) { errno = EINVAL; die("bad --nofile %s (want SOFT:HARD)", spec); }
  /* Never above what this process has: raising a hard limit needs CAP_SYS_RESOURCE, which some
   * hosts (containers) withhold even from root. */
  struct rlimit now;
  if (getrlimit(RLIMIT_NOFILE, &now) == 0) {
    if (r.rlim_max > now.rlim_max) r.rlim_max = now.rlim_max;
    if (r.rlim_cur > r.rlim_max) r.rlim_cur = r.rlim_max;
  }
  if (setrlimit(RLIMIT_NOFILE, &r) < 0) die("setrlimit RLIMIT_NOFILE %s", spec);
}

/* RLIMIT_NPROC (soft = hard) for the capsule, set before its user namespace is made: the kernel
 * then caps the tasks of the whole namespace (every uid inside counts against the namespace
 * owner's, i.e. the capsule's own host uid) at this number, and refuses a fork beyond it early in
 * copy_process, before the address space is copied. pids.max refuses only after that copy (and
 * its teardown: page tables freed by RCU, TLB flush IPIs on every CPU): a fork bomb stopped here
 * costs its neighbours less. Root inside cannot raise it (no CAP_SYS_RESOURCE outside). */
static void set_nproc(const char *spec) {
  if (!spec) return;
  char *end;
  unsigned long n = strtoul(spec, &end, 10);
  if (*end || n < 16) { errno = EINVAL; die("bad --nproc %s (want a number >= 16)", spec); }
  struct rlimit r = {.rlim_cur = n, .rlim_max = n}, now;
  if (getrlimit(RLIMIT_NPROC, &now) == 0 && r.rlim_max > now.rlim_max) r.rlim_cur = r.rlim_max = now.rlim_max;
  if (setrlimit(RLIMIT_NPROC, &r) < 0) die("setrlimit RLIMIT_NPROC %s", spec);
}

/* Minimal /dev: a few character devices, a private devpts instance and a /dev/shm tmpfs. */
static void mount_dev(struct opts *o) {
  char dev[PATH_MAX], p[PATH_MAX], data[128];
  in_root(dev, o->rootfs, "/dev");
  mkdirs(dev, 0755);
  snprintf(data, sizeof data, "mode=755,size=65536k,uid=%d,gid=%d", o->root_uid, o->root_uid);
  mount_or_die("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, data);
  static const struct { const char *name; int major, minor; } nodes[] = {
      {"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}};
  for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++) {
    snprintf(p, sizeof p, "%s/%s", dev, nodes[i].name);
    if (mknod(p, S_IFCHR | 0666, makedev(nodes[i].major, nodes[i].minor)) < 0) die("mknod %s", p);
    if (chmod(p, 0666) < 0) die("chmod %s", p); /* umask-proof */
    if (lchown(p, o->root_uid, o->root_uid) < 0) die("chown %s", p);
  }
  static const char *links[][2] = {{"ptmx", "pts/ptmx"}, {"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"},
                                   {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"}};
  for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
    snprintf(p, sizeof p, "%s/%s", dev, links[i][0]);
    if (symlink(links[i][1], p) < 0) die("symlink %s", p);
    if (lchown(p, o->root_uid, o->root_uid) < 0) die("chown %s", p);
  }
  snprintf(p, sizeof p, "%s/pts", dev);
  mkdirs(p, 0755);
  if (lchown(p, o->root_uid, o->root_uid) < 0) die("chown %s", p);
  if (o->pts_gid >= 0) snprintf(data, sizeof data, "newinstance,ptmxmode=0666,mode=0620,gid=%d", o->pts_gid);
  else snprintf(data, sizeof data, "newinstance,ptmxmode=0666,mode=0620");
  mount_or_die("devpts", p, "devpts", MS_NOSUID | MS_NOEXEC, data);
  snprintf(p, sizeof p, "%s/shm", dev);
  mkdirs(p, 01777);
  snprintf(data, sizeof data, "mode=1777,uid=%d,gid=%d", o->root_uid, o->root_uid);
  mount_or_die("shm", p, "tmpfs", MS_NOSUID | MS_NODEV, data);
}

/* --bind SRC:DST mounts SRC read-only at DST inside the root (--bind-rw: writable;
 * --bind-rw-idmapped: writable, and seen through the layer idmap like the upper layer, when there
 * is one: SRC stays stored in the canonical range); DST is
 * created as a file or dir when the root filesystem lacks it. */
static void mount_binds(struct opts *o, int userns) {
  char p[PATH_MAX], src[PATH_MAX];
  for (int i = 0; i < o->n_tmpfs; i++) {
    in_root(p, o->rootfs, o->tmpfs[i]);
    mkdirs(p, 0755);
    mount_or_die("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=64k");
  }
  for (int i = 0; i < o->n_binds; i++) {
    const char *colon = strchr(o->binds[i], ':');
    if (!colon) { errno = EINVAL; die("bad --bind %s (want SRC:DST)", o->binds[i]); }
    snprintf(src, sizeof src, "%.*s", (int)(colon - o->binds[i]), o->binds[i]);
    in_root(p, o->rootfs, colon + 1);
    struct stat st;
    if (stat(src, &st) < 0) die("bind source %s", src);
    if (S_ISDIR(st.st_mode)) {
      mkdirs(p, 0755);
    } else if (lstat(p, &st) < 0) { /* never open an existing overlay file: that copies it up */
      char parent[PATH_MAX];
      snprintf(parent, sizeof parent, "%s", p);
      char *slash = strrchr(parent, '/');
      if (slash) { *slash = 0; mkdirs(parent, 0755); }
      int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      if (fd < 0) die("create bind target %s", p);
      if (fchown(fd, o->root_uid, o->root_uid) < 0) die("chown %s", p); /* root's inside */
      close(fd);
    }
    if (o->bind_rw[i] == 2 && userns >= 0) {
      int t = idmapped_tree(src, userns);
      struct mount_attr attr = {.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV};
      if (mount_setattr(t, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0) die("nosuid,nodev on %s", src);
      if (move_mount(t, "", AT_FDCWD, p, MOVE_MOUNT_F_EMPTY_PATH) < 0) die("mount %s on %s (idmapped)", src, p);
      close(t);
      continue;
    }
    mount_or_die(src, p, NULL, MS_BIND, NULL);
    unsigned long ro = o->bind_rw[i] ? 0 : MS_RDONLY;
    mount_or_die(NULL, p, NULL, MS_BIND | MS_REMOUNT | ro | MS_NOSUID | MS_NODEV, NULL);
  }
  /* The tmpfs skeletons only hold mount points: freeze them read-only too. */
  for (int i = 0; i < o->n_tmpfs; i++) {
    in_root(p, o->rootfs, o->tmpfs[i]);
    mount_or_die(NULL, p, "tmpfs", MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "mode=755");
  }
}

/* A VM gets a new boot_id at every boot; the capsule's /proc would show the host's. The host
 * writes a fresh one per boot (boot-id.ts) and it is bound over the file read-only, by host root
 * before the capsule's user namespace exists, so the capsule's root can neither write nor unmount it. */
static void bind_boot_id(struct opts *o) {
  char p[PATH_MAX];
  in_root(p, o->rootfs, "/proc/sys/kernel/random/boot_id");
  mount_or_die(o->boot_id, p, NULL, MS_BIND, NULL);
  mount_or_die(NULL, p, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
}

/* An O_PATH fd of directory PATH inside the root, each missing component made (as root inside).
 * PATH comes from an API: it is walked one component at a time with O_NOFOLLOW, so a symlink on
 * the way (a template may hold any) is refused instead of followed out of the capsule's root. */
static int dir_in_root(const char *rootfs, const char *path) {
  int fd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) die("open %s", rootfs);
  char buf[PATH_MAX];
  snprintf(buf, sizeof buf, "%s", path);
  char *save = NULL;
  for (char *c = strtok_r(buf, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
    if (!strcmp(c, ".") || !strcmp(c, "..")) { errno = EINVAL; die("volume path %s holds . or ..", path); }
    if (mkdirat(fd, c, 0755) < 0 && errno != EEXIST) die("mkdir %s of volume path %s", c, path);
    int next = openat(fd, c, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0) die("volume path %s: %s is not a directory in the capsule (symlinks are refused)", path, c);
    close(fd);
    fd = next;
  }
  return fd;
}

/* --volume SRC:DST: a volume's files (SRC, a host directory stored in the canonical id range like
 * the layers) writable at DST, nosuid and nodev, seen through the layer idmap when there is one,
 * so every capsule sharing the volume sees its files as its own ids. */
static void mount_volumes(struct opts *o, int userns) {
  char src[PATH_MAX];
  for (int i = 0; i < o->n_volumes; i++) {
    const char *colon = strchr(o->volumes[i], ':');
    if (!colon || colon[1] != '/') { errno = EINVAL; die("bad --volume %s (want SRC:/DST)", o->volumes[i]); }
    snprintf(src, sizeof src, "%.*s", (int)(colon - o->volumes[i]), o->volumes[i]);
    int dst = dir_in_root(o->rootfs, colon + 1);
    int t = userns >= 0 ? idmapped_tree(src, userns) : open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (t < 0) die("open_tree %s", src);
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV};
    if (mount_setattr(t, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0) die("nosuid,nodev on volume %s", src);
    if (move_mount(t, "", dst, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
      die("mount volume %s on %s", src, colon + 1);
    close(t);
    close(dst);
  }
}

/* procfd is the host's /proc opened before pivot_root moved this process's root too. */
static void write_id_map(int procfd, pid_t pid, const char *file, const char *map) {
  char p[64];
  snprintf(p, sizeof p, "%d/%s", (int)pid, file);
  int fd = openat(procfd, p, O_WRONLY | O_CLOEXEC);
  if (fd < 0) die("open /proc/%s", p);
  size_t len = strlen(map);
  if (write(fd, map, len) != (ssize_t)len) die("write %s to /proc/%s", map, p);
  close(fd);
}

static void become(uid_t uid, gid_t gid) {
  if (setresgid(gid, gid, gid) < 0) die("setresgid %d", (int)gid);
  if (setgroups(0, NULL) < 0) die("setgroups");
  if (setresuid(uid, uid, uid) < 0) die("setresuid %d", (int)uid);
}

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* One GET on 127.0.0.1:port; 1 when the status line says 2xx. Loopback refuses instantly when
 * nothing listens, so a tight poll costs almost nothing. */
static int http_ok(int port, const char *path) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return 0;
  struct timeval tv = {1, 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int ok = 0;
  if (connect(s, (struct sockaddr *)&a, sizeof a) == 0) {
    char req[256], res[64];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    if (write(s, req, (size_t)n) == n) {
      ssize_t got = 0, r;
      while (got < 12 && (r = read(s, res + got, sizeof res - 1 - (size_t)got)) > 0) got += r;
      res[got > 0 ? got : 0] = 0;
      ok = got >= 12 && strncmp(res, "HTTP/1.", 7) == 0 && res[9] == '2';
    }
  }
  close(s);
  return ok;
}

static pid_t main_pid = 0;
static void forward(int sig) {
  if (main_pid > 0) kill(main_pid, sig);
}

static int g_argc;
static char **g_argv;

/* Shows the init as "wrenn-init" inside the capsule instead of a command line full of host
 * paths: keep copies of what the init still needs, then blank the original argv area. */
static void set_title(struct opts *o) {
  int n = 0;
  while (o->argv[n]) n++;
  char **copy = calloc((size_t)n + 1, sizeof *copy);
  if (!copy) die("calloc");
  for (int i = 0; i < n; i++) copy[i] = strdup(o->argv[i]);
  o->argv = copy;
  o->cwd = strdup(o->cwd);
  o->ready_path = strdup(o->ready_path);
  char *start = g_argv[0], *end = g_argv[g_argc - 1] + strlen(g_argv[g_argc - 1]);
  memset(start, 0, (size_t)(end - start));
  snprintf(start, (size_t)(end - start), "wrenn-init");
  *end = '.'; /* no NUL at the very end: the kernel then reports cmdline up to the first NUL */
  prctl(PR_SET_NAME, "wrenn-init", 0, 0, 0);
}

static int exit_code(int st) { return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st); }

/* The write end of the capsule's output pipe, held by the init until it makes it fds 1 and 2. */
static int log_wr = -1;

/* The parent's side of the output pipe: what it has written to the host log (fd 1) and dropped. */
struct log_sink {
  /* The log's directory (opened before pivot_root moved this process's root into the capsule's)
   * and its name there; dir < 0: no rotation, output past the cap is dropped. */
  int dir;
  const char *name;
  long max, size, dropped;
  time_t rotated;
};

static void log_put(const char *buf, size_t n) {
  while (n > 0) {
    ssize_t w = write(1, buf, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return; /* the host log is gone or full: the capsule must not notice */
    buf += w;
    n -= (size_t)w;
  }
}

/* Says how much output was dropped since the last such line (a rotation or the end writes it). */
static void log_marker(struct log_sink *l) {
  if (!l->dropped) return;
  char m[160];
  int n = snprintf(m, sizeof m, "\nwrenn-nsinit: dropped %ld bytes of capsule output (over %ld bytes within %d s)\n",
                   l->dropped, l->max, LOG_ROTATE_MIN_S);
  log_put(m, (size_t)n);
  l->size += n;
  l->dropped = 0;
}

/* NAME becomes NAME.1 (replacing the older one) and a new NAME takes fds 1 and 2. */
static int log_rotate(struct log_sink *l) {
  time_t now = time(NULL);
  if (l->dir < 0 || (l->rotated && now - l->rotated < LOG_ROTATE_MIN_S)) return 0;
  char old[PATH_MAX];
  snprintf(old, sizeof old, "%s.1", l->name);
  int fd = -1;
  if (renameat(l->dir, l->name, l->dir, old) < 0 ||
      (fd = openat(l->dir, l->name, O_WRONLY | O_APPEND | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0640)) < 0) {
    char m[PATH_MAX + 80];
    int n = snprintf(m, sizeof m, "\nwrenn-nsinit: rotating %s failed: %s\n", l->name, strerror(errno));
    log_put(m, (size_t)n);
    l->rotated = now; /* try again after the interval */
    return 0;
  }
  dup2(fd, 1);
  dup2(fd, 2);
  close(fd);
  l->rotated = now;
  l->size = 0;
  log_marker(l);
  return 1;
}

static void log_write(struct log_sink *l, const char *buf, size_t n) {
  if (l->size + (long)n > l->max) log_rotate(l);
  size_t room = l->size < l->max ? (size_t)(l->max - l->size) : 0;
  if (n > room) {
    if (!l->dropped) { /* the first drop says so at once, past the cap by this one line */
      static const char m[] = "\nwrenn-nsinit: capsule output over the log cap: dropping it until the log rotates\n";
      log_put(buf, room);
      log_put(m, sizeof m - 1);
      l->size += (long)(room + sizeof m - 1);
      l->dropped = (long)(n - room);
      return;
    }
    l->dropped += (long)(n - room);
    n = room;
  }
  log_put(buf, n);
  l->size += (long)n;
}

/* Copies what the (non-blocking) pipe holds, at most `rounds` reads; 0 once it is at end of file
 * (every writer gone). */
static int log_pump(int rd, struct log_sink *l, int rounds) {
  char buf[65536];
  while (rounds-- > 0) {
    ssize_t r = read(rd, buf, sizeof buf);
    if (r > 0) {
      log_write(l, buf, (size_t)r);
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    return r < 0 && errno == EAGAIN;
  }
  return 1;
}

/* PID 1 of the capsule: starts the main process, reports readiness, reaps orphans, and exits
 * (taking the whole PID namespace with it) when the main process exits. */
static void run_init(struct opts *o) {
  /* From here on the init's output, and everything it starts, goes to the pipe. */
  if (log_wr >= 0) {
    if (dup2(log_wr, 1) < 0 || dup2(log_wr, 2) < 0) die("output pipe");
    close(log_wr);
    log_wr = -1;
  }
  struct sigaction sa = {.sa_handler = forward};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  int ready_pipe[2] = {-1, -1};
  if (o->ready_port > 0 && o->ready_fd && pipe2(ready_pipe, O_CLOEXEC) < 0) die("pipe for readiness");
  main_pid = fork();
  if (main_pid < 0) die("fork main process");
  if (main_pid == 0) {
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigaction(SIGTERM, &dfl, NULL);
    sigaction(SIGINT, &dfl, NULL);
    sigaction(SIGHUP, &dfl, NULL);
    if (ready_pipe[1] >= 0) {
      /* fd 3 (the helper's status pipe is close-on-exec) becomes the readiness pipe */
      if (dup2(ready_pipe[1], STATUS_FD) < 0) _exit(126);
      setenv("WRENN_READY_FD", "3", 1);
    }
    setsid();
    if (chdir(o->cwd) < 0) chdir("/");
    execve(o->argv[0], o->argv, environ);
    fprintf(stderr, "wrenn-nsinit: exec %s: %s\n", o->argv[0], strerror(errno));
    _exit(127);
  }
  int st;
  if (ready_pipe[1] >= 0) close(ready_pipe[1]);
  int ready_rd = ready_pipe[0];
  if (o->ready_port > 0) {
    long deadline = now_ms() + o->ready_timeout_ms;
    char said[64];
    size_t said_n = 0;
    for (;;) {
      pid_t w;
      while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
        if (w == main_pid) {
          say("error main process exited with code %d before %s answered\n", exit_code(st), o->ready_path);
          _exit(exit_code(st));
        }
      }
      if (ready_rd >= 0) {
        /* the main process speaks for itself: wait on its pipe (2 ms at a time, to reap) */
        struct pollfd p = {.fd = ready_rd, .events = POLLIN};
        if (poll(&p, 1, 2) > 0) {
          ssize_t r = read(ready_rd, said + said_n, sizeof said - 1 - said_n);
          if (r > 0) said_n += (size_t)r;
          said[said_n] = 0;
          if (strstr(said, "ready\n")) {
            close(ready_rd);
            step("init: main process ready (said so)");
            break;
          }
          if (r <= 0 || said_n >= sizeof said - 1) { close(ready_rd); ready_rd = -1; }
        }
      } else {
        if (http_ok(o->ready_port, o->ready_path)) {
          step("init: main process ready");
          break;
        }
        usleep(2000);
      }
      if (now_ms() > deadline) {
        say("error %s on port %d did not answer within %d ms\n", o->ready_path, o->ready_port, o->ready_timeout_ms);
        kill(main_pid, SIGKILL);
        _exit(124);
      }
    }
  } else if (ready_rd >= 0) {
    close(ready_rd);
  }
  say("ready\n");
  if (status_fd >= 0) { close(status_fd); status_fd = -1; }
  for (;;) {
    pid_t w = waitpid(-1, &st, 0);
    if (w == main_pid) {
      /* The last line of envd.log: the agent quotes it as the reason the capsule stopped. */
      if (WIFSIGNALED(st)) fprintf(stderr, "wrenn-init: main process killed by signal %d (%s)\n", WTERMSIG(st), strsignal(WTERMSIG(st)));
      else fprintf(stderr, "wrenn-init: main process exited with code %d\n", exit_code(st));
      _exit(exit_code(st));
    }
    if (w < 0 && errno == ECHILD) _exit(0);
  }
}

/* The parent's life after the set-up: copy the capsule's output into the host log as it comes
 * (never leaving the pipe full for long, so writers inside are not held up), and reap the init.
 * A pidfd says when the init exited (no timer); what the pipe still holds then is copied, and the
 * parent exits without waiting for the pipe to close (a writer could keep it open). */
static int relay_until_exit(pid_t child, int rd, int log_dir, struct opts *o) {
  const char *slash = o->log ? strrchr(o->log, '/') : NULL;
  struct log_sink l = {.dir = log_dir, .name = slash ? slash + 1 : o->log, .max = o->log_max};
  struct stat st_log;
  if (fstat(1, &st_log) == 0 && S_ISREG(st_log.st_mode)) l.size = (long)st_log.st_size;
  reap_idmap_child(); /* long gone by now: the capsule is up */
  fcntl(rd, F_SETFL, O_NONBLOCK);
  int pidfd = (int)syscall(SYS_pidfd_open, child, 0);
  int st = 0;
  pid_t w = 0;
  for (;;) {
    struct pollfd p[2] = {{.fd = rd, .events = POLLIN}, {.fd = pidfd, .events = POLLIN}};
    int n = poll(p, 2, pidfd >= 0 ? -1 : 50); /* a kernel without pidfds: look every 50 ms */
    if (n < 0 && errno != EINTR) break;
    if (rd >= 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR)) && !log_pump(rd, &l, 16)) {
      close(rd);
      rd = -1;
    }
    if (pidfd < 0 || (p[1].revents & POLLIN)) {
      w = waitpid(child, &st, WNOHANG);
      if (w == child || (w < 0 && errno != EINTR)) break;
    }
  }
  if (rd >= 0) log_pump(rd, &l, 64); /* what the capsule wrote before its init exited */
  log_marker(&l);
  while (w != child) /* only if poll failed */
    if ((w = waitpid(child, &st, 0)) < 0 && errno != EINTR) return 1;
  return exit_code(st);
}

static int cmd_start(struct opts *o) {
  if (!o->upper || !o->work || !o->rootfs || o->n_lowers == 0 || !o->uid_map || !o->gid_map) {
    errno = EINVAL;
    die("start needs --lower, --upper, --work, --rootfs, --uid-map and --gid-map");
  }
  step("start");
  int layer_userns = o->layer_idmap ? idmap_userns(o->layer_idmap) : -1;
  step("layer idmap namespace");
  join_cgroups(o);
  step("join cgroups");
  if (o->netns) {
    int fd = open(o->netns, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open network namespace %s", o->netns);
    if (setns(fd, CLONE_NEWNET) < 0) die("join network namespace %s", o->netns);
    close(fd);
  } else if (unshare(CLONE_NEWNET) < 0) {
    die("new network namespace");
  }
  step("network namespace");
  set_loopback_up();
  apply_sysctls(o);
  step("loopback + sysctls");
  if (unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID) < 0) die("unshare");
  step("unshare mnt/uts/ipc/pid");
  /* Nothing mounted from here on may leak back to the host. */
  mount_or_die(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
  if (o->hostname && sethostname(o->hostname, strlen(o->hostname)) < 0) die("sethostname");
  if (o->root_uid > 0) act_as_owner(o->root_uid);
  mount_overlay(o, layer_userns);
  step("overlay");
  char p[PATH_MAX];
  in_root(p, o->rootfs, "/sys");
  mkdirs(p, 0555);
  /* Mounted as host root in the capsule's network namespace: shows only its own interfaces. */
  mount_or_die("sysfs", p, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  mount_dev(o);
  mount_binds(o, layer_userns);
  mount_volumes(o, layer_userns);
  if (layer_userns >= 0) close(layer_userns);
  if (o->root_uid > 0) act_as_owner(0);
  step("sys, dev, binds");
  in_root(p, o->rootfs, "/proc");
  mkdirs(p, 0555);

  /* Host paths must be opened now: pivot_root below moves this process's root as well. */
  int procfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (procfd < 0) die("open /proc");
  int parent_fds[MAX_LIST];
  for (int i = 0; i < o->n_cgroups; i++) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", o->cgroups[i]);
    char *slash = strrchr(dir, '/');
    parent_fds[i] = -1;
    if (!slash) continue;
    snprintf(slash, sizeof dir - (size_t)(slash - dir), "/tasks");
    parent_fds[i] = open(dir, O_WRONLY | O_CLOEXEC);
  }
  int up[2], go[2]; /* child -> parent "user namespace made"; parent -> child "ids mapped" */
  if (pipe2(up, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0) die("pipe");
  int out[2]; /* the capsule's output: init and main process write, this parent reads */
  if (pipe2(out, O_CLOEXEC) < 0) die("pipe for output");
  int log_dir = -1; /* where the parent rotates the log (an absolute --log PATH) */
  if (o->log && o->log[0] == '/') {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", o->log);
    *(strrchr(dir, '/') == dir ? dir + 1 : strrchr(dir, '/')) = 0;
    if ((log_dir = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) die("open %s", dir);
  }
  pid_t child = fork();
  if (child < 0) die("fork capsule init");
  if (child == 0) {
    if (log_dir >= 0) close(log_dir);
    close(out[0]);
    log_wr = out[1];
    /* Nothing of the host may stay reachable from inside: no host /proc, no cgroup files, and
     * no ptrace of this init by the capsule's root. */
    close(procfd);
    for (int i = 0; i < o->n_cgroups; i++)
      if (parent_fds[i] >= 0) close(parent_fds[i]);
    close_layer_fds(); /* the parent still holds them: no dissolve here */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    close(up[0]);
    close(go[1]);
    step("init: forked");
    /* PID 1 of the new PID namespace: its /proc. */
    mount_or_die("proc", p, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    if (o->boot_id) bind_boot_id(o);
    if (chdir(o->rootfs) < 0) die("chdir %s", o->rootfs);
    /* pivot_root(".", ".") stacks the old root on top of the new one; detach it at once. */
    if (syscall(SYS_pivot_root, ".", ".") < 0) die("pivot_root");
    if (umount2(".", MNT_DETACH) < 0) die("detach old root");
    if (chdir("/") < 0) die("chdir /");
    step("init: proc, pivot_root");
    set_nofile(o->nofile);
    set_nproc(o->nproc);
    /* The user namespace is created as the capsule's own host uid, so that uid owns it. */
    if (o->root_uid > 0) {
      become((uid_t)o->root_uid, (gid_t)o->root_uid);
      prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); /* a change of uid may have reset it */
    }
    if (unshare(CLONE_NEWUSER) < 0)
      die(o->root_uid > 0 && errno == EPERM
              ? "new user namespace as host uid %d (does the host forbid unprivileged user namespaces?)"
              : "new user namespace (as host uid %d)",
          o->root_uid);
    step("init: own user namespace");
    char c = 'u';
    if (write(up[1], &c, 1) != 1) die("signal parent");
    if (read(go[0], &c, 1) != 1 || c != 'g') { errno = EPIPE; die("parent did not map ids"); }
    close(up[1]);
    close(go[0]);
    become(0, 0);
    step("init: ids mapped");
    set_title(o);
    if (seccomp_policy_install(&capsule_filter) < 0) die("install seccomp filter");
    run_init(o);
  }
  close(up[1]);
  close(go[0]);
  close(out[1]);
  char c;
  if (read(up[0], &c, 1) != 1) { errno = EPIPE; die("capsule init failed during set-up"); }
  write_id_map(procfd, child, "uid_map", o->uid_map);
  write_id_map(procfd, child, "gid_map", o->gid_map);
  say("pid %d\n", (int)child);
  c = 'g';
  if (write(go[1], &c, 1) != 1) die("release capsule init");
  if (status_fd >= 0) { close(status_fd); status_fd = -1; } /* the init reports readiness */
  close_layer_fds(); /* while the init starts its main process */
  /* Stay as the init's parent so that its exit is reaped here and not left as a zombie for
   * the host's PID 1 (which may not reap). Step out of the capsule's cgroups first: killing
   * the capsule must not kill its reaper. Detached from the agent (own session), this outlives
   * an agent restart; it exits with the init's exit code. */
  for (int i = 0; i < o->n_cgroups; i++)
    if (parent_fds[i] >= 0) { (void)!write(parent_fds[i], "0", 1); close(parent_fds[i]); }
  signal(SIGTERM, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  return relay_until_exit(child, out[0], log_dir, o);
}

/* Runs ARGV inside a running capsule: its cgroups, namespaces and root, as uid/gid. */
static int cmd_exec(struct opts *o) {
  if (o->pid <= 0) { errno = EINVAL; die("exec needs --pid"); }
  join_cgroups(o);
  static const struct { const char *name; int type; } ns[] = {
      {"net", CLONE_NEWNET}, {"uts", CLONE_NEWUTS}, {"ipc", CLONE_NEWIPC},
      {"pid", CLONE_NEWPID}, {"mnt", CLONE_NEWNS},  {"user", CLONE_NEWUSER}};
  int fds[6];
  char p[PATH_MAX];
  for (int i = 0; i < 6; i++) {
    snprintf(p, sizeof p, "/proc/%d/ns/%s", o->pid, ns[i].name);
    if ((fds[i] = open(p, O_RDONLY | O_CLOEXEC)) < 0) die("open %s", p);
  }
  snprintf(p, sizeof p, "/proc/%d/root", o->pid);
  int root = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) die("open %s", p);
  for (int i = 0; i < 6; i++)
    if (setns(fds[i], ns[i].type) < 0) die("join %s namespace of %d", ns[i].name, o->pid);
  if (fchdir(root) < 0 || chroot(".") < 0) die("enter root of %d", o->pid);
  set_nofile(o->nofile);
  /* while still root in the capsule's user namespace (CAP_SYS_ADMIN there): no no_new_privs */
  if (seccomp_policy_install(&capsule_filter) < 0) die("install seccomp filter");
  become((uid_t)o->uid, (gid_t)o->gid);
  pid_t child = fork(); /* the PID namespace applies to children only */
  if (child < 0) die("fork");
  if (child == 0) {
    if (chdir(o->cwd) < 0) chdir("/");
    execvp(o->argv[0], o->argv);
    fprintf(stderr, "wrenn-nsinit: exec %s: %s\n", o->argv[0], strerror(errno));
    _exit(127);
  }
  main_pid = child;
  struct sigaction sa = {.sa_handler = forward};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  int st;
  while (waitpid(child, &st, 0) < 0)
    if (errno != EINTR) die("wait");
  return exit_code(st);
}

/* The capsule's UTS namespace belongs to the host's user namespace: only host root renames it. */
static int cmd_hostname(struct opts *o) {
  if (o->pid <= 0) { errno = EINVAL; die("hostname needs --pid"); }
  char p[64];
  snprintf(p, sizeof p, "/proc/%d/ns/uts", o->pid);
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("open %s", p);
  if (setns(fd, CLONE_NEWUTS) < 0) die("join uts namespace of %d", o->pid);
  if (sethostname(o->argv[0], strlen(o->argv[0])) < 0) die("sethostname %s", o->argv[0]);
  return 0;
}

int main(int argc, char **argv) {
  g_argc = argc;
  g_argv = argv;
  if (fcntl(STATUS_FD, F_SETFD, FD_CLOEXEC) == 0) status_fd = STATUS_FD;
  if (argc < 2) {
    fprintf(stderr, "usage: wrenn-nsinit start|exec|hostname [options] -- ARGV...\n");
    return 2;
  }
  struct opts o;
  parse(argc, argv, &o);
  if ((!strcmp(argv[1], "start") || !strcmp(argv[1], "exec")) &&
      seccomp_policy_prepare(o.seccomp_allow, &capsule_filter) < 0)
    die("seccomp filter for --seccomp-allow %s", o.seccomp_allow ? o.seccomp_allow : "(none)");
  if (!strcmp(argv[1], "start")) return cmd_start(&o);
  if (!strcmp(argv[1], "exec")) return cmd_exec(&o);
  if (!strcmp(argv[1], "hostname")) return cmd_hostname(&o);
  fprintf(stderr, "wrenn-nsinit: unknown command %s (want start or exec)\n", argv[1]);
  return 2;
}
