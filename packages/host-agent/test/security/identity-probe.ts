// A tiny static C probe for the identity tests: the minimal template is busybox only (no node, no
// keyctl, no python), so the kernel-state attacks are made by this program, compiled here with gcc
// and streamed into a capsule as base64 (busybox base64 -d).

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compileStaticFile } from './static-probe.js';

const SOURCE = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <linux/keyctl.h>
#include <sys/wait.h>
#include <unistd.h>

static void most_fds(void) {
  struct rlimit r;
  getrlimit(RLIMIT_NOFILE, &r);
  r.rlim_cur = r.rlim_max;
  setrlimit(RLIMIT_NOFILE, &r);
}
static const char *err(int e) { return strerrorname_np(e) ? strerrorname_np(e) : "?"; }
static long add_key(const char *desc) {
  static const char payload[64] = "wrenn identity probe";
  return syscall(SYS_add_key, "user", desc, payload, sizeof payload, KEY_SPEC_USER_KEYRING);
}
static void hold(int seconds) { fflush(stdout); if (seconds > 0) sleep((unsigned)seconds); }

int main(int argc, char **argv) {
  const char *cmd = argc > 1 ? argv[1] : "";
  int n = argc > 2 ? atoi(argv[2]) : 0, m = argc > 3 ? atoi(argv[3]) : 0;
  if (!strcmp(cmd, "inotify-hog")) { /* inotify-hog HOLD: instances until refused, then hold them */
    most_fds();
    int count = 0, e = 0;
    for (;; count++) if (inotify_init1(IN_CLOEXEC) < 0) { e = errno; break; }
    printf("instances %d %s\n", count, err(e));
    hold(n);
    return 0;
  }
  if (!strcmp(cmd, "inotify-one")) {
    int fd = inotify_init1(IN_CLOEXEC);
    printf("%s\n", fd >= 0 ? "ok" : err(errno));
    return fd >= 0 ? 0 : 1;
  }
  if (!strcmp(cmd, "pipes-hog")) { /* pipes-hog HOLD: pipes until a new one is below 64 KiB */
    most_fds();
    int count = 0, size = 0, p[2];
    for (; count < 100000; count++) {
      if (pipe(p) < 0) { printf("pipes %d failed %s\n", count, err(errno)); hold(n); return 0; }
      size = fcntl(p[0], F_GETPIPE_SZ);
      if (size < 65536) break;
    }
    printf("pipes %d size %d\n", count, size);
    hold(n);
    return 0;
  }
  if (!strcmp(cmd, "pipe-size")) {
    int p[2];
    if (pipe(p) < 0) { printf("%s\n", err(errno)); return 1; }
    printf("%d\n", fcntl(p[0], F_GETPIPE_SZ));
    return 0;
  }
  if (!strcmp(cmd, "fd-hog")) { /* fd-hog PROCS HOLD: every process opens files until refused */
    most_fds();
    for (int i = 0; i < n; i++) {
      pid_t c = fork();
      if (c < 0) break;
      if (c == 0) {
        int k = 0;
        while (open("/dev/null", O_RDONLY) >= 0) k++;
        printf("child %d %s\n", k, err(errno));
        hold(m);
        _exit(0);
      }
    }
    hold(m);
    return 0;
  }
  if (!strcmp(cmd, "open-one")) {
    int fd = open("/dev/null", O_RDONLY);
    printf("%s\n", fd >= 0 ? "ok" : err(errno));
    return fd >= 0 ? 0 : 1;
  }
  if (!strcmp(cmd, "keys-hog")) { /* keys-hog: user keys until refused (the per-user key quota) */
    int count = 0;
    char desc[64];
    for (;; count++) {
      snprintf(desc, sizeof desc, "wrenn-hog-%d", count);
      if (add_key(desc) < 0) break;
    }
    printf("keys %d %s\n", count, err(errno));
    return 0;
  }
  if (!strcmp(cmd, "key-add")) { /* key-add DESC: prints the new key's serial or the error */
    long k = add_key(argc > 2 ? argv[2] : "wrenn-one");
    if (k < 0) printf("%s\n", err(errno)); else printf("%ld\n", k);
    return k < 0;
  }
  if (!strcmp(cmd, "key-read")) { /* key-read SERIAL */
    char buf[256];
    long r = syscall(SYS_keyctl, KEYCTL_READ, n, buf, sizeof buf);
    printf("%s\n", r >= 0 ? "read" : err(errno));
    return r < 0;
  }
  if (!strcmp(cmd, "userns-owner")) { /* userns-owner PID: host uid that owns PID's user namespace */
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/user", n);
    int fd = open(path, O_RDONLY);
    uid_t uid;
    if (fd < 0 || ioctl(fd, NS_GET_OWNER_UID, &uid) < 0) { printf("%s\n", err(errno)); return 1; }
    printf("%u\n", uid);
    return 0;
  }
  fprintf(stderr, "usage: probe inotify-hog|inotify-one|pipes-hog|pipe-size|fd-hog|open-one|keys-hog|key-add|key-read|userns-owner ...\n");
  return 2;
}
`;

/** Compiles the probe (static, so it runs in any template); returns its path on the host. */
export function buildProbe(): { path: string; base64: string; cleanup(): void } {
  const dir = mkdtempSync('/tmp/wrenn-probe-');
  const src = join(dir, 'probe.c');
  const bin = join(dir, 'probe');
  writeFileSync(src, SOURCE);
  try {
    compileStaticFile(src, bin);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    path: bin,
    base64: readFileSync(bin).toString('base64'),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
