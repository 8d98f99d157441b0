/*
 * hostile-probe: what a hostile tenant runs inside a capsule, as one static binary (the `minimal`
 * template has busybox but no compiler). The security suite and bench/neighbour-latency.mjs build
 * it on the host with `gcc -static` and upload it through the files API.
 *
 * Every attack starts its own session (so the test can kill the whole group afterwards), runs for
 * at most <secs> seconds and then exits by itself, and prints one JSON line on stdout.
 *
 *   connect <ip> <port> <timeout_ms>   one TCP connect: {"result":"open|refused|timeout|error","errno":N}
 *   neighbour                          what a healthy capsule can still do: an inotify instance, a
 *                                      pipe of default size, 64 open files, a fork
 *   forkbomb <secs>                    every process forks as fast as it can until the deadline
 *   memhog <secs>                      allocates and touches memory until killed or the deadline
 *   cpuhog <secs> <procs>              <procs> busy loops
 *   fds <secs> <procs> [cap]           <procs> processes each open files up to their hard limit (or
 *                                      <cap> each, so a test on an unprotected host stops short of
 *                                      emptying the host's file table)
 *   inotify <secs> <procs>             inotify instances (one watch each) until refused
 *   pipes <secs> <procs>               1 MiB pipes filled to the brim until refused
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double deadline;
static long cap_per_proc = -1;

static void sleep_until_deadline(void) {
  while (now() < deadline) usleep(50 * 1000);
}

static void raise_nofile(void) {
  struct rlimit r;
  if (getrlimit(RLIMIT_NOFILE, &r) == 0) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
}

/* Runs fn in <procs> children and sums what they report through a pipe (one long each). */
static void in_children(int procs, long (*fn)(int *last_errno), const char *what) {
  int p[2];
  if (pipe(p) != 0) {
    printf("{\"attack\":\"%s\",\"error\":\"pipe: %s\"}\n", what, strerror(errno));
    return;
  }
  int started = 0;
  for (int i = 0; i < procs; i++) {
    pid_t pid = fork();
    if (pid == 0) {
      close(p[0]);
      int e = 0;
      long n = fn(&e);
      long msg[2] = {n, e};
      if (write(p[1], msg, sizeof msg) < 0) _exit(1);
      close(p[1]);
      sleep_until_deadline();
      _exit(0);
    }
    if (pid > 0) started++;
  }
  close(p[1]);
  long total = 0, msg[2];
  int last_errno = 0, reported = 0;
  while (read(p[0], msg, sizeof msg) == (ssize_t)sizeof msg) {
    total += msg[0];
    if (msg[1]) last_errno = (int)msg[1];
    reported++;
  }
  while (wait(NULL) > 0) {
  }
  printf("{\"attack\":\"%s\",\"procs\":%d,\"reported\":%d,\"total\":%ld,\"errno\":%d,\"error\":\"%s\"}\n", what, started, reported,
         total, last_errno, last_errno ? strerror(last_errno) : "");
}

static long open_files(int *e) {
  raise_nofile();
  long n = 0;
  while (now() < deadline && (cap_per_proc < 0 || n < cap_per_proc)) {
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      *e = errno;
      if (errno == EMFILE || errno == ENFILE) break;
      usleep(1000);
      continue;
    }
    n++;
  }
  return n;
}

static long inotify_instances(int *e) {
  raise_nofile();
  long n = 0;
  while (now() < deadline) {
    int fd = inotify_init1(IN_CLOEXEC);
    if (fd < 0) {
      *e = errno;
      break;
    }
    inotify_add_watch(fd, "/", IN_CREATE);
    n++;
  }
  return n;
}

/* Bytes held in pipe buffers. */
static long fill_pipes(int *e) {
  raise_nofile();
  static char buf[65536];
  long bytes = 0;
  while (now() < deadline) {
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) {
      *e = errno;
      break;
    }
    fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
    for (;;) {
      ssize_t w = write(p[1], buf, sizeof buf);
      if (w <= 0) break;
      bytes += w;
    }
  }
  return bytes;
}

static long busy(int *e) {
  (void)e;
  volatile unsigned long x = 0;
  while (now() < deadline)
    for (int i = 0; i < 1000000; i++) x += i;
  return 0;
}

static int cmd_connect(const char *ip, int port, int timeout_ms) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
  if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
    printf("{\"result\":\"error\",\"errno\":%d,\"error\":\"bad address\"}\n", EINVAL);
    return 0;
  }
  int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (s < 0) {
    printf("{\"result\":\"error\",\"errno\":%d,\"error\":\"%s\"}\n", errno, strerror(errno));
    return 0;
  }
  int r = connect(s, (struct sockaddr *)&a, sizeof a);
  int err = r == 0 ? 0 : errno;
  if (r != 0 && errno == EINPROGRESS) {
    struct pollfd pfd = {.fd = s, .events = POLLOUT};
    int pr = poll(&pfd, 1, timeout_ms);
    if (pr == 0) {
      printf("{\"result\":\"timeout\",\"errno\":0}\n");
      return 0;
    }
    socklen_t len = sizeof err;
    getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len);
  }
  const char *res = err == 0 ? "open" : err == ECONNREFUSED ? "refused" : "error";
  printf("{\"result\":\"%s\",\"errno\":%d,\"error\":\"%s\"}\n", res, err, err ? strerror(err) : "");
  return 0;
}

static int cmd_neighbour(void) {
  int ino = inotify_init1(IN_CLOEXEC);
  int ino_errno = ino < 0 ? errno : 0;
  int p[2];
  long pipe_size = -1;
  int pipe_errno = 0;
  if (pipe2(p, O_CLOEXEC) == 0)
    pipe_size = fcntl(p[1], F_GETPIPE_SZ);
  else
    pipe_errno = errno;
  int files = 0, files_errno = 0;
  for (int i = 0; i < 64; i++) {
    if (open("/dev/null", O_RDONLY | O_CLOEXEC) < 0) {
      files_errno = errno;
      break;
    }
    files++;
  }
  pid_t pid = fork();
  int fork_errno = pid < 0 ? errno : 0;
  if (pid == 0) _exit(0);
  if (pid > 0) waitpid(pid, NULL, 0);
  printf("{\"inotify\":%s,\"inotify_errno\":%d,\"pipe_size\":%ld,\"pipe_errno\":%d,\"files\":%d,\"files_errno\":%d,\"fork\":%s,\"fork_errno\":%d}\n",
         ino >= 0 ? "true" : "false", ino_errno, pipe_size, pipe_errno, files, files_errno, pid >= 0 ? "true" : "false", fork_errno);
  return 0;
}

static int cmd_forkbomb(void) {
  while (now() < deadline) fork();
  _exit(0);
}

static int cmd_memhog(void) {
  FILE *f = fopen("/proc/self/oom_score_adj", "w");
  if (f) {
    fputs("1000", f);
    fclose(f);
  }
  long mb = 0;
  while (now() < deadline) {
    char *p = mmap(NULL, 16 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      usleep(10000);
      continue;
    }
    for (long i = 0; i < (16 << 20); i += 4096) p[i] = 1;
    mb += 16;
  }
  printf("{\"attack\":\"memhog\",\"mb\":%ld}\n", mb);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: hostile-probe <command> [args]\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IONBF, 0);
  const char *cmd = argv[1];
  if (strcmp(cmd, "connect") == 0 && argc == 5) return cmd_connect(argv[2], atoi(argv[3]), atoi(argv[4]));
  if (strcmp(cmd, "neighbour") == 0) return cmd_neighbour();
  if (argc < 3) {
    fprintf(stderr, "hostile-probe %s: missing <secs>\n", cmd);
    return 2;
  }
  deadline = now() + atof(argv[2]);
  int procs = argc > 3 ? atoi(argv[3]) : 1;
  if (argc > 4) cap_per_proc = atol(argv[4]);
  setsid();
  signal(SIGPIPE, SIG_IGN);
  if (strcmp(cmd, "forkbomb") == 0) return cmd_forkbomb();
  if (strcmp(cmd, "memhog") == 0) return cmd_memhog();
  if (strcmp(cmd, "cpuhog") == 0) return in_children(procs, busy, "cpuhog"), 0;
  if (strcmp(cmd, "fds") == 0) return in_children(procs, open_files, "fds"), 0;
  if (strcmp(cmd, "inotify") == 0) return in_children(procs, inotify_instances, "inotify"), 0;
  if (strcmp(cmd, "pipes") == 0) return in_children(procs, fill_pipes, "pipes"), 0;
  fprintf(stderr, "hostile-probe: unknown command %s\n", cmd);
  return 2;
}
