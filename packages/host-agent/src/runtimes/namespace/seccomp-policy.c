/*
 * The capsule seccomp policy: an ALLOWLIST for x86_64.
 *
 * Why: root inside a capsule holds every capability in its own user namespace, so the kernel's
 * capability checks alone leave it the whole syscall surface of "namespaced root" (new network
 * namespaces with nf_tables, keyrings, bpf, io_uring, ...), where most container escapes start.
 * The filter keeps what programs need and refuses the rest before the kernel looks at it.
 *
 * Actions:
 *   - a syscall named in the allowlist below: allowed (some only with safe arguments);
 *   - clone3: ENOSYS, so libc falls back to clone(2), whose flags a filter can read;
 *   - any other syscall this policy knows (x86_64 numbers below FIRST_UNKNOWN_NR): EPERM, as
 *     Docker's default profile answers;
 *   - a syscall number this policy has never heard of (>= FIRST_UNKNOWN_NR, i.e. newer than
 *     Linux 6.18): ENOSYS, as on an older kernel, so libraries fall back instead of failing;
 *   - i386 (int 0x80), x32 and any other ABI: the process is killed (SIGSYS). No 32-bit
 *     entry points: a second syscall table is a second attack surface.
 * Per template, SECCOMP_ALLOW_USERNS opens namespace creation (clone/unshare flags, setns) and
 * the mount family (which then only works inside namespaces the capsule itself created: the
 * capsule's own mounts belong to the host's user namespace), and SECCOMP_ALLOW_PERF opens
 * perf_event_open.
 *
 * pidfd_getfd is refused outright rather than "for processes outside the capsule": the pid
 * namespace already makes those unreachable, inside it ptrace covers debuggers, and nothing we run
 * needs to copy another process's descriptors, so it is one fd-stealing primitive less.
 *
 * Written from the Linux syscall table and man pages; the choices follow the same reasoning as
 * Docker's default profile and are stricter in places (NUMA policy, kcmp, pidfd_getfd, adjtimex,
 * modify_ldt, the x32/i386 ABIs, and every namespace flag rather than just CAP_SYS_ADMIN ones).
 */
#define _GNU_SOURCE
#include "seccomp-policy.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* One past the highest x86_64 syscall number of Linux 6.18 (file_setattr = 469). */
#define FIRST_UNKNOWN_NR 470
#define X32_SYSCALL_BIT 0x40000000u

/* Allowed whatever the arguments. */
static const char *const allowed[] = {
    /* files and descriptors */
    "read", "write", "open", "openat", "openat2", "close", "close_range", "creat", "lseek",
    "pread64", "pwrite64", "readv", "writev", "preadv", "pwritev", "preadv2", "pwritev2",
    "stat", "fstat", "lstat", "newfstatat", "statx", "statfs", "fstatfs", "access", "faccessat",
    "faccessat2", "dup", "dup2", "dup3", "pipe", "pipe2", "fcntl", "flock", "ioctl", "fsync",
    "fdatasync", "sync", "syncfs", "sync_file_range", "truncate", "ftruncate", "fallocate",
    "fadvise64", "readahead", "getdents", "getdents64", "getcwd", "chdir", "fchdir", "rename",
    "renameat", "renameat2", "mkdir", "mkdirat", "rmdir", "link", "linkat", "unlink", "unlinkat",
    "symlink", "symlinkat", "readlink", "readlinkat", "chmod", "fchmod", "fchmodat", "fchmodat2",
    "chown", "fchown", "lchown", "fchownat", "umask", "utime", "utimes", "utimensat", "futimesat",
    "mknod", "mknodat", /* devices need CAP_MKNOD in the host's namespace: fifos and sockets only */
    "chroot", "sendfile", "splice", "tee", "vmsplice", "copy_file_range", "memfd_create",
    "setxattr", "lsetxattr", "fsetxattr", "getxattr", "lgetxattr", "fgetxattr", "listxattr",
    "llistxattr", "flistxattr", "removexattr", "lremovexattr", "fremovexattr", "setxattrat",
    "getxattrat", "listxattrat", "removexattrat", "file_getattr", "file_setattr", "cachestat",
    "inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
    /* polling, events, timers, clocks (reading only) */
    "poll", "ppoll", "select", "pselect6", "epoll_create", "epoll_create1", "epoll_ctl",
    "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "signalfd", "signalfd4",
    "timerfd_create", "timerfd_settime", "timerfd_gettime", "timer_create", "timer_settime",
    "timer_gettime", "timer_getoverrun", "timer_delete", "getitimer", "setitimer", "alarm",
    "nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday", "time",
    "pause",
    /* classic asynchronous I/O (not io_uring) */
    "io_setup", "io_destroy", "io_getevents", "io_pgetevents", "io_submit", "io_cancel",
    /* memory */
    "brk", "mmap", "munmap", "mremap", "mprotect", "msync", "mincore", "madvise", "mlock",
    "mlock2", "munlock", "mlockall", "munlockall", "remap_file_pages", "membarrier",
    "pkey_mprotect", "pkey_alloc", "pkey_free", "map_shadow_stack", "mseal",
    /* System V and POSIX IPC (the capsule has its own IPC namespace) */
    "shmget", "shmat", "shmctl", "shmdt", "semget", "semop", "semtimedop", "semctl", "msgget",
    "msgsnd", "msgrcv", "msgctl", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive",
    "mq_notify", "mq_getsetattr",
    /* network (socket() itself is checked below) */
    "socketpair", "connect", "accept", "accept4", "bind", "listen", "shutdown", "getsockname",
    "getpeername", "setsockopt", "getsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg",
    "sendmmsg", "recvmmsg",
    /* processes, signals, threads */
    "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid", "kill",
    "tkill", "tgkill", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending",
    "rt_sigtimedwait", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "rt_sigsuspend", "sigaltstack",
    "restart_syscall", "pidfd_open", "pidfd_send_signal", "futex", "futex_waitv", "futex_wake",
    "futex_wait", "futex_requeue", "set_robust_list", "get_robust_list", "set_tid_address",
    "rseq", "arch_prctl", "set_thread_area", "get_thread_area", "prctl", "getpid", "getppid",
    "gettid", "getpgid", "setpgid", "getpgrp", "getsid", "setsid", "uname", "sysinfo", "times",
    "getrusage", "getrlimit", "setrlimit", "prlimit64", "getpriority", "setpriority", "getcpu",
    "sched_yield", "sched_setparam", "sched_getparam", "sched_setscheduler",
    "sched_getscheduler", "sched_get_priority_max", "sched_get_priority_min",
    "sched_rr_get_interval", "sched_setaffinity", "sched_getaffinity", "sched_setattr",
    "sched_getattr", "ioprio_set", "ioprio_get",
    /* debugging inside the capsule: its pid namespace is all it can reach */
    "ptrace", "process_vm_readv", "process_vm_writev",
    /* identities (mapped ids only) and capabilities (in the capsule's user namespace) */
    "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups", "setuid",
    "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setfsuid", "setfsgid",
    "setgroups", "capget", "capset",
    /* self-sandboxing: a program may restrict itself further */
    "seccomp", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
    "lsm_get_self_attr", "lsm_list_modules",
    /* uprobe trampolines: the kernel refuses them unless called from its own trampoline page */
    "uretprobe", "uprobe",
    "getrandom",
};

/* Allowed with SECCOMP_ALLOW_USERNS: only meaningful inside namespaces the capsule made. */
static const char *const nested_only[] = {
    "setns", "mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr", "sethostname", "setdomainname",
};

/* Names libseccomp 2.5.4 (Debian 12) does not know yet, with their x86_64 numbers. */
static const struct {
  const char *name;
  int nr;
} newer[] = {
    {"uretprobe", 335}, {"uprobe", 336}, {"futex_wake", 454}, {"futex_wait", 455},
    {"futex_requeue", 456}, {"lsm_get_self_attr", 459}, {"lsm_list_modules", 461},
    {"mseal", 462}, {"setxattrat", 463}, {"getxattrat", 464}, {"listxattrat", 465},
    {"removexattrat", 466}, {"file_getattr", 468}, {"file_setattr", 469},
};

/* clone/unshare flags that make a new namespace. CLONE_NEWTIME (0x80) is a clone() exit-signal
 * bit, so it is only checked for unshare(). */
#define NAMESPACE_FLAGS \
  ((unsigned long)(CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | \
                   CLONE_NEWPID | CLONE_NEWNET))
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x80
#endif

static int resolve(const char *name) {
  int nr = seccomp_syscall_resolve_name(name);
  if (nr != __NR_SCMP_ERROR) return nr;
  for (size_t i = 0; i < sizeof newer / sizeof newer[0]; i++)
    if (!strcmp(newer[i].name, name)) return newer[i].nr;
  return __NR_SCMP_ERROR;
}

static int allow_all(scmp_filter_ctx ctx, const char *const *names, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int nr = resolve(names[i]);
    if (nr == __NR_SCMP_ERROR) {
      errno = ENOENT; /* a name in the tables above that nobody can resolve: a typo */
      return -1;
    }
    int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
    if (rc < 0) {
      errno = -rc;
      return -1;
    }
  }
  return 0;
}

#define TRY(call)                   \
  do {                              \
    int rc_ = (call);               \
    if (rc_ < 0) {                  \
      errno = -rc_;                 \
      goto fail;                    \
    }                               \
  } while (0)

static scmp_filter_ctx make_filter(unsigned allow) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
  if (!ctx) {
    errno = ENOMEM;
    return NULL;
  }
  /* Foreign ABIs (i386 int 0x80, x32) are killed; the native arch is x86_64 only. */
  TRY(seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS));
  TRY(seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0));
  TRY(seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2)); /* binary tree: O(log n) per syscall */
  if (allow_all(ctx, allowed, sizeof allowed / sizeof allowed[0]) < 0) goto fail;
  TRY(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0));
  if (allow & SECCOMP_ALLOW_USERNS) {
    if (allow_all(ctx, nested_only, sizeof nested_only / sizeof nested_only[0]) < 0) goto fail;
    TRY(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 0));
    TRY(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(unshare), 0));
  } else {
    TRY(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                         SCMP_A0(SCMP_CMP_MASKED_EQ, NAMESPACE_FLAGS, 0)));
    TRY(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(unshare), 1,
                         SCMP_A0(SCMP_CMP_MASKED_EQ, NAMESPACE_FLAGS | CLONE_NEWTIME, 0)));
  }
  if (allow & SECCOMP_ALLOW_PERF) TRY(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(perf_event_open), 0));
  /* Every address family but AF_VSOCK (40): a path to the hypervisor when there is one. */
  TRY(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_NE, 40)));
  /* personality(): Linux, Linux32, UNAME26 and the query; not ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC... */
  static const unsigned long personas[] = {0x0, 0x8, 0x20000, 0x20008, 0xffffffff};
  for (size_t i = 0; i < sizeof personas / sizeof personas[0]; i++)
    TRY(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(personality), 1, SCMP_A0(SCMP_CMP_EQ, personas[i])));
  return ctx;
fail:;
  int e = errno;
  seccomp_release(ctx);
  errno = e;
  return NULL;
}

int seccomp_policy_parse(const char *list, unsigned *allow) {
  *allow = 0;
  if (!list || !*list || !strcmp(list, "none")) return 0;
  const char *p = list;
  while (*p) {
    size_t n = strcspn(p, ",");
    if (n == 6 && !strncmp(p, "userns", n)) *allow |= SECCOMP_ALLOW_USERNS;
    else if (n == 4 && !strncmp(p, "perf", n)) *allow |= SECCOMP_ALLOW_PERF;
    else {
      errno = EINVAL;
      return -1;
    }
    p += n;
    if (*p == ',') p++;
  }
  return 0;
}

/* Reads what libseccomp exported into a memory file back into an array of instructions. */
static struct sock_filter *read_program(int fd, size_t *count) {
  off_t size = lseek(fd, 0, SEEK_END);
  if (size <= 0 || size % (off_t)sizeof(struct sock_filter) != 0) {
    errno = EIO;
    return NULL;
  }
  struct sock_filter *code = malloc((size_t)size);
  if (!code) return NULL;
  if (pread(fd, code, (size_t)size, 0) != size) {
    free(code);
    errno = EIO;
    return NULL;
  }
  *count = (size_t)size / sizeof(struct sock_filter);
  return code;
}

int seccomp_policy_build(unsigned allow, struct sock_fprog *prog) {
  scmp_filter_ctx ctx = make_filter(allow);
  if (!ctx) return -1;
  int fd = memfd_create("wrenn-seccomp", MFD_CLOEXEC);
  int rc = fd < 0 ? -errno : seccomp_export_bpf(ctx, fd);
  seccomp_release(ctx);
  if (rc < 0) {
    if (fd >= 0) close(fd);
    errno = -rc;
    return -1;
  }
  size_t n = 0;
  struct sock_filter *body = read_program(fd, &n);
  close(fd);
  if (!body) return -1;
  /* Prefix: an x86_64 syscall number above every one this policy knows answers ENOSYS, as a
   * kernel without it would. libseccomp cannot say "nr >= N"; a short prefix can. x32 numbers
   * (bit 30) and other arches fall through to libseccomp's own checks. */
  const struct sock_filter prefix[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 4),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, FIRST_UNKNOWN_NR, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
  };
  size_t np = sizeof prefix / sizeof prefix[0];
  struct sock_filter *code = malloc((np + n) * sizeof *code);
  if (!code || np + n > BPF_MAXINSNS) {
    free(body);
    free(code);
    errno = code ? E2BIG : ENOMEM;
    return -1;
  }
  memcpy(code, prefix, sizeof prefix);
  memcpy(code + np, body, n * sizeof *code);
  free(body);
  prog->len = (unsigned short)(np + n);
  prog->filter = code;
  return 0;
}

/* The compiled program is cached next to the wrenn-nsinit binary (<exe>.seccomp-<allow>.bpf):
 * libseccomp takes about 2 ms per build, reading the cache some microseconds. The cache is only
 * trusted when root owns it, nobody else may write it, and it is newer than the binary (a rebuild
 * of wrenn-nsinit, after any policy change, makes it stale). */
static int cache_path(unsigned allow, char *out, size_t n, struct stat *exe) {
  char bin[PATH_MAX];
  ssize_t len = readlink("/proc/self/exe", bin, sizeof bin - 1);
  if (len <= 0) return -1;
  bin[len] = 0;
  if (stat(bin, exe) < 0) return -1;
  return snprintf(out, n, "%s.seccomp-%u.bpf", bin, allow) < (int)n ? 0 : -1;
}

static int newer_than(const struct stat *a, const struct stat *b) {
  return a->st_mtim.tv_sec > b->st_mtim.tv_sec ||
         (a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec >= b->st_mtim.tv_nsec);
}

static int read_cache(const char *path, const struct stat *exe, struct sock_fprog *prog) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return -1;
  struct stat st;
  size_t n = 0;
  struct sock_filter *code = NULL;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == 0 && !(st.st_mode & 022) &&
      newer_than(&st, exe) && st.st_size > 0 && st.st_size <= BPF_MAXINSNS * (off_t)sizeof *code)
    code = read_program(fd, &n);
  close(fd);
  if (!code) return -1;
  prog->len = (unsigned short)n;
  prog->filter = code;
  return 0;
}

static void write_cache(const char *path, const struct sock_fprog *prog) {
  char tmp[PATH_MAX + 32];
  snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return; /* a read-only install: build every time */
  size_t size = prog->len * sizeof *prog->filter;
  int ok = write(fd, prog->filter, size) == (ssize_t)size;
  if (close(fd) < 0) ok = 0;
  if (!ok || rename(tmp, path) < 0) unlink(tmp); /* rename: readers never see half a file */
}

int seccomp_policy_prepare(const char *allow_list, struct sock_fprog *prog) {
  unsigned allow;
  if (seccomp_policy_parse(allow_list, &allow) < 0) return -1;
  char path[PATH_MAX + 32];
  struct stat exe;
  int cacheable = geteuid() == 0 && cache_path(allow, path, sizeof path, &exe) == 0;
  if (cacheable && read_cache(path, &exe, prog) == 0) return 0;
  if (seccomp_policy_build(allow, prog) < 0) return -1;
  if (cacheable) write_cache(path, prog);
  return 0;
}

int seccomp_policy_install(const struct sock_fprog *prog) {
  return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, prog);
}
