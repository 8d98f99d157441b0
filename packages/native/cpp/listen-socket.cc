// See listen-socket.h. listenTcp(address, port, backlog) -> fd | null: a close-on-exec socket bound
// to a numeric IPv4 or IPv6 address (no scope id) and listening, with SO_REUSEADDR as libuv sets it
// (IPv6 sockets stay dual-stack, as node's are). null when `address` is not a numeric address (the
// caller then leaves it to node's own resolution); an Error with `errno` when a call fails.
// Close-on-exec matters: every process the owner starts later must not hold its listening socket.
#include "listen-socket.h"

#include "napi-errno.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace wrenn {
namespace {

napi_value ListenTcp(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value a[3];
  napi_get_cb_info(env, info, &argc, a, nullptr, nullptr);
  char host[64];
  size_t hostLen = 0;
  int32_t port = -1, backlog = 511;
  if (argc < 3 || napi_get_value_string_utf8(env, a[0], host, sizeof host, &hostLen) != napi_ok ||
      napi_get_value_int32(env, a[1], &port) != napi_ok || napi_get_value_int32(env, a[2], &backlog) != napi_ok) {
    napi_throw_type_error(env, nullptr, "listenTcp(address: string, port: number, backlog: number)");
    return nullptr;
  }
  if (port < 0 || port > 65535 || backlog < 1) {
    napi_throw_range_error(env, nullptr, "listenTcp: port must be 0..65535 and backlog at least 1");
    return nullptr;
  }
  sockaddr_storage ss{};
  socklen_t len;
  if (hostLen + 1 >= sizeof host) {
    // longer than any numeric address: a name
    napi_value nothing;
    napi_get_null(env, &nothing);
    return nothing;
  }
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof *v4;
  } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof *v6;
  } else {
    napi_value nothing;
    napi_get_null(env, &nothing);
    return nothing;
  }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return throwErrno(env, "socket", errno);
  int on = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0) {
    int e = errno;
    close(fd);
    return throwErrno(env, "setsockopt SO_REUSEADDR", e);
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) < 0) {
    int e = errno;
    close(fd);
    return throwErrno(env, "bind", e);
  }
  if (listen(fd, backlog) < 0) {
    int e = errno;
    close(fd);
    return throwErrno(env, "listen", e);
  }
  napi_value out;
  napi_create_int32(env, fd, &out);
  return out;
}

}  // namespace

void registerListenSocket(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"listenTcp", nullptr, ListenTcp, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}

}  // namespace wrenn
