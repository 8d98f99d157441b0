// userfaultfd and unix-socket fd passing, the way Firecracker hands a snapshot's guest memory to
// an external page-fault handler. Plain C++ (no Node types) so it can be reasoned about alone.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace wrenn {

// One guest memory region as Firecracker describes it (JSON over the socket).
struct Region {
  uint64_t base;      // host virtual address in the VMM
  uint64_t size;
  uint64_t offset;    // offset of the region in the guest memory file(s)
  uint64_t pageSize;
};

struct Received {
  int uffd = -1;
  std::string body;   // the JSON text that came with the fd
};

// Listens on `path` (replacing a stale socket), accepts one connection and receives one message
// with an fd attached (SCM_RIGHTS). Throws std::runtime_error with errno text on failure.
Received receiveUffd(const std::string& path, int timeoutMs);

// Connects to `path` and sends `body` with `fd` attached (what Firecracker does).
void sendFd(const std::string& path, int fd, const std::string& body);

struct ServeStats {
  uint64_t faults = 0;
  uint64_t copiedBytes = 0;
  uint64_t zeroPages = 0;
  uint64_t removeEvents = 0;
};

// Serves page faults on `uffd` until the VMM side goes away (POLLHUP / EOF) or `stopFd` becomes
// readable. Block b of guest memory (blockSize bytes, a multiple of the page size) comes from
// files[blockGen[b]] at the same offset (-1: zero page). Each file is mapped once.
// prefetchPages > 1: a fault also fills the following pages held by the same generation (one
// UFFDIO_COPY), so sequential access faults once per run instead of once per page.
ServeStats serveFaults(int uffd, const std::vector<Region>& regions, uint64_t blockSize,
                       const std::vector<int32_t>& blockGen, const std::vector<std::string>& files, int stopFd,
                       uint64_t prefetchPages = 1);

// Test helper playing the VMM: an anonymous private mapping registered for missing-page faults.
struct Registered {
  int uffd;
  uint64_t addr;
  uint64_t size;
};
Registered registerRegion(uint64_t size);

// Data extents of a sparse file (SEEK_DATA / SEEK_HOLE), as [start, end) pairs.
std::vector<std::pair<uint64_t, uint64_t>> dataRanges(const std::string& path);

}  // namespace wrenn
