// See sock-diag.h. inetDiagDump(family, protocol, states) sends one SOCK_DIAG_BY_FAMILY dump
// request (inet_diag_req_v2) on a fresh NETLINK_SOCK_DIAG socket and returns the reply's
// inet_diag_msg netlink messages, as the kernel wrote them, in one Buffer (NLMSG_DONE left out);
// the caller parses them. With states = 1 << TCP_LISTEN the kernel walks only the listening
// hash and skips the established one. Synchronous: a dump of a capsule's few listeners is tens
// of microseconds, less than a hop to the thread pool.
#include "sock-diag.h"

#include "napi-errno.h"

#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace wrenn {
namespace {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// The dump's messages (everything up to NLMSG_DONE), or -errno.
int dump(uint8_t family, uint8_t protocol, uint32_t states, std::vector<char>& out) {
  Fd sock(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (sock.get() < 0) return -errno;
  struct {
    nlmsghdr nlh;
    inet_diag_req_v2 req;
  } msg;
  memset(&msg, 0, sizeof msg);
  msg.nlh.nlmsg_len = sizeof msg;
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  msg.nlh.nlmsg_seq = 1;
  msg.req.sdiag_family = family;
  msg.req.sdiag_protocol = protocol;
  msg.req.idiag_states = states;
  sockaddr_nl kernel;
  memset(&kernel, 0, sizeof kernel);
  kernel.nl_family = AF_NETLINK;
  ssize_t sent;
  do sent = sendto(sock.get(), &msg, sizeof msg, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel);
  while (sent < 0 && errno == EINTR);
  if (sent < 0) return -errno;
  // The kernel fills each read with as many messages as fit; 32 KiB holds ~170 sockets.
  std::vector<char> buf(32768);
  for (;;) {
    ssize_t len;
    do len = recv(sock.get(), buf.data(), buf.size(), 0);
    while (len < 0 && errno == EINTR);
    if (len < 0) return -errno;
    if (len == 0) return -EIO;
    int left = static_cast<int>(len);
    for (nlmsghdr* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_type == NLMSG_DONE) return 0;
      if (h->nlmsg_type == NLMSG_ERROR) {
        const nlmsgerr* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
        return h->nlmsg_len >= NLMSG_LENGTH(sizeof(nlmsgerr)) && e->error < 0 ? e->error : -EIO;
      }
      const char* start = reinterpret_cast<const char*>(h);
      out.insert(out.end(), start, start + NLMSG_ALIGN(h->nlmsg_len));
    }
  }
}

bool uintArg(napi_env env, napi_value v, uint32_t max, uint32_t* out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || d < 0 || d > max || d != static_cast<double>(static_cast<uint32_t>(d))) return false;
  *out = static_cast<uint32_t>(d);
  return true;
}

// inetDiagDump(family, protocol, states): Buffer of inet_diag_msg netlink messages.
napi_value InetDiagDump(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  uint32_t family = 0, protocol = 0, states = 0;
  if (argc < 3 || !uintArg(env, argv[0], 255, &family) || !uintArg(env, argv[1], 255, &protocol) ||
      !uintArg(env, argv[2], 0xffffffffu, &states) || (family != AF_INET && family != AF_INET6)) {
    napi_throw_type_error(env, nullptr, "inetDiagDump(family, protocol, states) needs AF_INET (2) or AF_INET6 (10), a protocol number and a state mask");
    return nullptr;
  }
  std::vector<char> out;
  int r = dump(static_cast<uint8_t>(family), static_cast<uint8_t>(protocol), states, out);
  if (r < 0) return throwErrno(env, "inet_diag dump", -r);
  napi_value result;
  void* data = nullptr;
  napi_create_buffer_copy(env, out.size(), out.data(), &data, &result);
  return result;
}

}  // namespace

void registerSockDiag(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"inetDiagDump", nullptr, InetDiagDump, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}

}  // namespace wrenn
