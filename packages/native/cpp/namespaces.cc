// Setting a capsule's host name from the agent without starting a process: a short-lived thread
// joins the capsule's UTS namespace (setns affects only the calling thread) and calls
// sethostname there. Root inside a capsule holds no capabilities, so the agent must do it; a fork
// of the agent's large process would cost milliseconds and stall its event loop meanwhile.
#include "namespaces.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include <stdexcept>
#include <string>
#include <thread>

namespace wrenn {

void setHostnameIn(int pid, const std::string& name) {
  if (pid <= 0) throw std::runtime_error("setHostnameIn: pid must be positive");
  if (name.empty() || name.size() > 64) throw std::runtime_error("setHostnameIn: the name must be 1-64 bytes");
  const std::string path = "/proc/" + std::to_string(pid) + "/ns/uts";
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("open " + path + ": " + strerror(errno));
  std::string failure;
  std::thread worker([&]() {
    if (setns(fd, CLONE_NEWUTS) < 0) {
      failure = std::string("setns into ") + path + ": " + strerror(errno);
      return;
    }
    if (sethostname(name.data(), name.size()) < 0) failure = std::string("sethostname: ") + strerror(errno);
  });
  worker.join();
  close(fd);
  if (!failure.empty()) throw std::runtime_error(failure);
}

}  // namespace wrenn
