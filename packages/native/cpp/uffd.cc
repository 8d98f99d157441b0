#include "uffd.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>

namespace wrenn {

static std::runtime_error sysError(const std::string& what) {
  return std::runtime_error(what + ": " + strerror(errno));
}

static sockaddr_un unixAddr(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof(a.sun_path)) throw std::runtime_error("socket path too long: " + path);
  memcpy(a.sun_path, path.c_str(), path.size() + 1);
  return a;
}

Received receiveUffd(const std::string& path, int timeoutMs) {
  sockaddr_un addr = unixAddr(path);
  int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (ls < 0) throw sysError("socket");
  unlink(path.c_str());
  if (bind(ls, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0 || listen(ls, 1) < 0) {
    auto e = sysError("bind/listen " + path);
    close(ls);
    throw e;
  }
  pollfd p{ls, POLLIN, 0};
  int r = poll(&p, 1, timeoutMs);
  if (r <= 0) {
    close(ls);
    unlink(path.c_str());
    if (r == 0) throw std::runtime_error("no VMM connected to " + path + " in time");
    throw sysError("poll");
  }
  int conn = accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
  close(ls);
  unlink(path.c_str());
  if (conn < 0) throw sysError("accept");
  Received out;
  // Firecracker sends the whole JSON in one message with the fd; read it, then any remainder.
  std::vector<char> buf(64 * 1024);
  char ctrl[CMSG_SPACE(sizeof(int))];
  iovec iov{buf.data(), buf.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctrl;
  msg.msg_controllen = sizeof(ctrl);
  ssize_t n = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC);
  if (n < 0) {
    auto e = sysError("recvmsg");
    close(conn);
    throw e;
  }
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) memcpy(&out.uffd, CMSG_DATA(c), sizeof(int));
  }
  out.body.assign(buf.data(), n);
  close(conn);
  if (out.uffd < 0) throw std::runtime_error("the VMM sent no file descriptor (expected a userfaultfd); body: " + out.body);
  return out;
}

void sendFd(const std::string& path, int fd, const std::string& body) {
  sockaddr_un addr = unixAddr(path);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) throw sysError("socket");
  if (connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
    auto e = sysError("connect " + path);
    close(s);
    throw e;
  }
  char ctrl[CMSG_SPACE(sizeof(int))]{};
  iovec iov{const_cast<char*>(body.data()), body.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctrl;
  msg.msg_controllen = sizeof(ctrl);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof(int));
  ssize_t n = sendmsg(s, &msg, MSG_NOSIGNAL);
  int err = errno;
  close(s);
  errno = err;
  if (n < 0) throw sysError("sendmsg");
}

namespace {
struct Mapped {
  const uint8_t* data = nullptr;
  uint64_t size = 0;
};
}  // namespace

ServeStats serveFaults(int uffd, const std::vector<Region>& regions, uint64_t blockSize,
                       const std::vector<int32_t>& blockGen, const std::vector<std::string>& files, int stopFd,
                       uint64_t prefetchPages) {
  ServeStats st;
  std::vector<Mapped> maps(files.size());
  for (size_t i = 0; i < files.size(); i++) {
    int fd = open(files[i].c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw sysError("open " + files[i]);
    struct stat s{};
    fstat(fd, &s);
    maps[i].size = s.st_size;
    if (s.st_size > 0) {
      void* m = mmap(nullptr, s.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (m == MAP_FAILED) {
        close(fd);
        throw sysError("mmap " + files[i]);
      }
      maps[i].data = static_cast<const uint8_t*>(m);
    }
    close(fd);
  }
  std::vector<bool> removed(blockGen.size(), false);
  auto cleanup = [&]() {
    for (auto& m : maps)
      if (m.data) munmap(const_cast<uint8_t*>(m.data), m.size);
  };
  pollfd pfds[2] = {{uffd, POLLIN, 0}, {stopFd, POLLIN, 0}};
  for (;;) {
    int r = poll(pfds, stopFd >= 0 ? 2 : 1, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      cleanup();
      throw sysError("poll uffd");
    }
    if (stopFd >= 0 && (pfds[1].revents & POLLIN)) break;
    if (pfds[0].revents & (POLLHUP | POLLERR)) break;
    uffd_msg msg;
    ssize_t n = read(uffd, &msg, sizeof(msg));
    if (n == 0) break;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      if (errno == EBADF) break;
      cleanup();
      throw sysError("read uffd");
    }
    if (msg.event == UFFD_EVENT_REMOVE) {
      // The guest gave these pages back (balloon): they must come back as zeros, not from the files.
      st.removeEvents++;
      for (const auto& reg : regions) {
        uint64_t s = msg.arg.remove.start, e = msg.arg.remove.end;
        if (e <= reg.base || s >= reg.base + reg.size) continue;
        uint64_t from = (std::max(s, reg.base) - reg.base + reg.offset) / blockSize;
        uint64_t to = (std::min(e, reg.base + reg.size) - reg.base + reg.offset + blockSize - 1) / blockSize;
        for (uint64_t b = from; b < to && b < removed.size(); b++) removed[b] = true;
      }
      continue;
    }
    if (msg.event != UFFD_EVENT_PAGEFAULT) continue;
    uint64_t addr = msg.arg.pagefault.address;
    const Region* reg = nullptr;
    for (const auto& rg : regions)
      if (addr >= rg.base && addr < rg.base + rg.size) reg = &rg;
    if (!reg) {
      cleanup();
      throw std::runtime_error("page fault at an address outside every region: " + std::to_string(addr));
    }
    uint64_t page = addr & ~(reg->pageSize - 1);
    uint64_t memOff = page - reg->base + reg->offset;
    uint64_t block = memOff / blockSize;
    int32_t gen = block < blockGen.size() && !removed[block] ? blockGen[block] : -1;
    st.faults++;
    int rc;
    if (gen < 0 || static_cast<size_t>(gen) >= maps.size() || memOff + reg->pageSize > maps[gen].size) {
      uffdio_zeropage z{};
      z.range.start = page;
      z.range.len = reg->pageSize;
      rc = ioctl(uffd, UFFDIO_ZEROPAGE, &z);
      if (rc == 0) st.zeroPages++;
    } else {
      // Extend over following pages of the same region that the same generation holds.
      uint64_t len = reg->pageSize;
      while (len / reg->pageSize < prefetchPages && page + len < reg->base + reg->size &&
             memOff + len + reg->pageSize <= maps[gen].size) {
        uint64_t nb = (memOff + len) / blockSize;
        if (nb >= blockGen.size() || removed[nb] || blockGen[nb] != gen) break;
        len += reg->pageSize;
      }
      uffdio_copy c{};
      c.dst = page;
      c.src = reinterpret_cast<uint64_t>(maps[gen].data + memOff);
      c.len = len;
      rc = ioctl(uffd, UFFDIO_COPY, &c);
      // A prefetched page that is already present stops the copy there (EEXIST): what was copied counts.
      if (c.copy > 0) st.copiedBytes += static_cast<uint64_t>(c.copy);
      if (rc < 0 && errno == EEXIST && c.copy > 0) rc = 0;
    }
    // EEXIST: another thread's fault already filled it; EAGAIN: a remove raced, the fault repeats.
    if (rc < 0 && errno != EEXIST && errno != EAGAIN) {
      if (errno == ESRCH || errno == ENOENT) break;  // the VMM is gone
      cleanup();
      throw sysError("UFFDIO_COPY");
    }
  }
  cleanup();
  return st;
}

Registered registerRegion(uint64_t size) {
  int uffd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (uffd < 0) throw sysError("userfaultfd (needs CONFIG_USERFAULTFD and root or vm.unprivileged_userfaultfd=1)");
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = UFFD_FEATURE_EVENT_REMOVE;
  if (ioctl(uffd, UFFDIO_API, &api) < 0) {
    auto e = sysError("UFFDIO_API");
    close(uffd);
    throw e;
  }
  void* m = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) {
    auto e = sysError("mmap");
    close(uffd);
    throw e;
  }
  uffdio_register reg{};
  reg.range.start = reinterpret_cast<uint64_t>(m);
  reg.range.len = size;
  reg.mode = UFFDIO_REGISTER_MODE_MISSING;
  if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
    auto e = sysError("UFFDIO_REGISTER");
    close(uffd);
    throw e;
  }
  return {uffd, reinterpret_cast<uint64_t>(m), size};
}

std::vector<std::pair<uint64_t, uint64_t>> dataRanges(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw sysError("open " + path);
  struct stat s{};
  fstat(fd, &s);
  std::vector<std::pair<uint64_t, uint64_t>> out;
  off_t pos = 0;
  while (pos < s.st_size) {
    off_t d = lseek(fd, pos, SEEK_DATA);
    if (d < 0) break;  // ENXIO: only a hole remains
    off_t h = lseek(fd, d, SEEK_HOLE);
    if (h < 0) h = s.st_size;
    out.emplace_back(d, h);
    pos = h;
  }
  close(fd);
  return out;
}

}  // namespace wrenn
