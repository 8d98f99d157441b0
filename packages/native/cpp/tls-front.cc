// The TLS front: terminates the control plane's TLS connections in one native thread, so Node's
// event loop does no per-record work for them. Why: this kernel has no kTLS, so an encrypted
// connection cannot be handed to the byte relay (relay.cc) as it is, and Node's own TLS sockets cost
// the proxy half its throughput (bench/proxy-tls). JS hands over each accepted TCP fd before a byte
// was read; this thread runs the handshake (OpenSSL from Node's own binary: same library, no second
// copy), picks h2 or http/1.1 by ALPN, then gives JS one end of a Unix socketpair that carries the
// connection's plaintext. On that end everything JS already does for plain HTTP works unchanged:
// the proxy's routing, the relay's HTTP mode, the API server, HTTP/2 sessions.
//
// Per connection: decrypted bytes go to the socketpair, bytes from it are encrypted to the client,
// each way with back-pressure (at most kMaxPending bytes held) and half-close (close_notify or EOF
// becomes shutdown(SHUT_WR) on the other side). A handshake not done within the context's timeout
// is cut off (slow or never-ending ClientHello); a failed one closes the TCP connection.
#include "tls-front.h"

#include "epoll-thread.h"
#include "h2-gateway.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace wrenn {
namespace {

constexpr size_t kRead = 16 * 1024;        // one TLS record's plaintext at most
constexpr size_t kMaxPending = 256 * 1024;  // decrypted bytes held while the socketpair is full
constexpr int kSweepMs = 100;

std::string sslError(const char* what) {
  unsigned long e = ERR_get_error();
  char buf[256] = {0};
  if (e) ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return std::string(what) + (e ? std::string(": ") + buf : "");
}

// ALPN: h2 first (the server's preference, as Node's http2 server has it), then http/1.1; a client
// offering neither goes on without ALPN (HTTP/1.1, as Node does for allowHTTP1).
const unsigned char kAlpn[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

int selectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
               void*) {
  unsigned char* o = nullptr;
  if (SSL_select_next_proto(&o, outlen, kAlpn, sizeof kAlpn, in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = o;
  return SSL_TLSEXT_ERR_OK;
}

struct Context {
  SSL_CTX* ssl = nullptr;
  int64_t handshakeMs = 10000;
  bool h2 = false;  // h2 connections are terminated here (h2-gateway.h)
  // An h2 session with no open stream and no connection into JS for this long is ended (GOAWAY):
  // a client that sends nothing after the handshake, or only PINGs, SETTINGS, WINDOW_UPDATEs.
  int64_t h2IdleMs = 10000;
  ~Context() {
    if (ssl) SSL_CTX_free(ssl);
  }
};

struct Conn {
  uint64_t id = 0;
  uint32_t ctx = 0;
  SSL* ssl = nullptr;
  int tcp = -1;
  int plain = -1;     // this thread's end of the socketpair
  int jsEnd = -1;     // JS's end, until it is handed over
  int64_t deadline = 0;
  bool open = false;  // handshake done
  std::string toPlain;
  std::string toTls;
  bool tlsEof = false, plainShut = false;   // client -> JS direction ended / passed on
  bool plainEof = false, tlsShut = false;   // JS -> client direction ended / passed on
  bool plainGone = false;                   // JS closed its end entirely
  bool plainHup = false;                    // epoll reported the plaintext side's EOF or hang-up
  // Edge-triggered readiness: a read is tried only after epoll said there is something (or the
  // last read filled its buffer), which saves a recv bound to fail per wake-up.
  bool tcpIn = true, plainIn = true;
  // h2 terminated in this thread: its streams go to JS as HTTP/1.1 on connections of their own.
  std::unique_ptr<h2gw::Gateway> h2;
  bool h2Native = false;
  int64_t h2IdleMs = 10000;
  std::string servername, address;
  int port = 0, family = 0;
};

struct Ready {
  uint32_t ctx;
  uint64_t id;
  int fd;
  std::string alpn, servername, address;
  int port, family;
};

class Front {
 public:
  explicit Front(napi_threadsafe_function tsfn) : tsfn_(tsfn), loop_("tls front") {
    ep_ = loop_.epfd();
    scratch_.reset(new char[kRead]);
    loop_.start("wrenn-tls-front", [this] { run(); });
  }

  ~Front() {
    loop_.stop();
    for (auto& [_, c] : conns_) closeConn(*c);
    // Connections handed over but never started.
    for (auto& c : loop_.take())
      if (c.kind == Cmd::Add && c.fd >= 0) close(c.fd);
  }

  uint32_t addContext(std::unique_ptr<Context> c) {
    std::lock_guard<std::mutex> l(ctxMu_);
    uint32_t id = ++lastCtx_;
    ctxs_[id] = std::move(c);
    return id;
  }

  // Takes fd (already dup'ed); the handshake starts in the thread.
  uint64_t add(uint32_t ctx, int fd) {
    uint64_t id = ++lastId_;
    loop_.push({Cmd::Add, ctx, id, fd});
    return id;
  }

  // Closes every connection of a context (handshaking or open) and forgets it.
  void drop(uint32_t ctx) { loop_.push({Cmd::Drop, ctx, 0, -1}); }

  std::atomic<uint64_t> active_{0}, handshakes_{0}, failed_{0}, h2Sessions_{0}, h2Conns_{0};
  // Connections into JS of h2 sessions that exist now (abandoned ones JS has not closed included),
  // and the most there were at once since the last resetPeak().
  std::atomic<uint64_t> h2Open_{0}, h2Peak_{0}, h2IdleClosed_{0};
  void resetPeak() { h2Peak_ = h2Open_.load(); }

 private:
  struct Cmd {
    enum Kind { Add, Drop } kind;
    uint32_t ctx;
    uint64_t id;
    int fd;
  };

  void run() {
    epoll_event evs[128];
    int64_t nextSweep = monotonicMs() + kSweepMs;
    while (!loop_.stopping()) {
      int n = epoll_wait(ep_, evs, 128, kSweepMs);
      for (int i = 0; i < n; i++) {
        uint64_t key = evs[i].data.u64;
        if (key == 0) {
          commands();
          continue;
        }
        uint32_t ev = evs[i].events;
        if ((key & 3) == 2) {
          // A connection of an h2 session into JS.
          auto u = ups_.find(key >> 2);
          if (u == ups_.end()) continue;
          auto it = conns_.find(u->second);
          if (it == conns_.end() || !it->second->h2) continue;
          it->second->h2->upstreamEvent(key >> 2, ev);
          pump(*it->second);
          continue;
        }
        auto it = conns_.find(key >> 2);
        if (it == conns_.end()) continue;
        Conn& c = *it->second;
        bool any = ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR);
        if (key & 1) {
          c.plainIn = c.plainIn || any;
          // The EOF comes as an edge of its own only when it follows the data later: with both in
          // one wake-up, a short read must not end the reading before recv saw the 0.
          if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c.plainHup = true;
          // JS closed its end for good (not only shut its writing): nothing more can reach it.
          if (ev & EPOLLHUP) c.plainGone = true;
        } else {
          c.tcpIn = c.tcpIn || any;
        }
        pump(c);
      }
      int64_t now = monotonicMs();
      if (now >= nextSweep) {
        nextSweep = now + kSweepMs;
        sweep(now);
      }
    }
  }

  void commands() {
    for (auto& c : loop_.take()) {
      if (c.kind == Cmd::Add) start(c);
      else {
        for (auto it = conns_.begin(); it != conns_.end();) {
          if (it->second->ctx == c.ctx) {
            finish(*it->second, false);
            it = conns_.erase(it);
          } else ++it;
        }
        std::lock_guard<std::mutex> l(ctxMu_);
        ctxs_.erase(c.ctx);
      }
    }
  }

  void start(const Cmd& c) {
    auto conn = std::make_unique<Conn>();
    conn->id = c.id;
    conn->ctx = c.ctx;
    conn->tcp = c.fd;
    SSL_CTX* sslCtx = nullptr;
    int64_t hs = 10000;
    {
      std::lock_guard<std::mutex> l(ctxMu_);
      auto it = ctxs_.find(c.ctx);
      if (it != ctxs_.end()) {
        sslCtx = it->second->ssl;
        hs = it->second->handshakeMs;
        conn->h2Native = it->second->h2;
        conn->h2IdleMs = it->second->h2IdleMs;
      }
    }
    int sp[2] = {-1, -1};
    if (!sslCtx || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) < 0 ||
        !(conn->ssl = SSL_new(sslCtx))) {
      if (sp[0] >= 0) close(sp[0]), close(sp[1]);
      close(c.fd);
      failed_++;
      return;
    }
    conn->plain = sp[0];
    conn->jsEnd = sp[1];
    fcntl(conn->tcp, F_SETFL, fcntl(conn->tcp, F_GETFL) | O_NONBLOCK);
    // Small responses leave at once (Node's HTTP servers set the same).
    int one = 1;
    setsockopt(conn->tcp, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    SSL_set_fd(conn->ssl, conn->tcp);
    // Whole records per recv where the client sent several (fewer syscalls per request).
    SSL_set_read_ahead(conn->ssl, 1);
    SSL_set_accept_state(conn->ssl);
    conn->deadline = monotonicMs() + hs;
    epoll_event e{};
    e.events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP;
    e.data.u64 = conn->id << 2;
    epoll_ctl(ep_, EPOLL_CTL_ADD, conn->tcp, &e);
    e.data.u64 = (conn->id << 2) | 1;
    epoll_ctl(ep_, EPOLL_CTL_ADD, conn->plain, &e);
    active_++;
    Conn& ref = *conn;
    conns_[conn->id] = std::move(conn);
    pump(ref);
  }

  void sweep(int64_t now) {
    std::vector<uint64_t> quiet;
    for (auto it = conns_.begin(); it != conns_.end();) {
      Conn& c = *it->second;
      if (!c.open && now >= c.deadline) {
        failed_++;
        finish(c, false);
        it = conns_.erase(it);
        continue;
      }
      if (c.h2) {
        c.h2->sweep(now);
        if (c.h2->quietMs(now) >= c.h2IdleMs) quiet.push_back(c.id);
      }
      ++it;
    }
    // Idle sessions: a GOAWAY (best effort: a client that reads nothing does not get it), then the
    // connection ends.
    for (uint64_t id : quiet) {
      auto it = conns_.find(id);
      if (it == conns_.end()) continue;
      Conn& c = *it->second;
      h2IdleClosed_++;
      c.h2->goaway();
      bool ok = stepH2(c);
      finish(c, ok);
      conns_.erase(it);
    }
  }

  // Moves what it can both ways until nothing more moves; ends the connection when both ways ended.
  void pump(Conn& c) {
    const uint64_t id = c.id;
    bool ok = step(c);
    if (ok && !(c.plainShut && c.tlsShut) && !(c.plainGone && c.tlsShut)) return;
    finish(c, ok);
    conns_.erase(id);
  }

  // false: the connection failed (both ends are closed).
  bool step(Conn& c) {
    if (!c.open) {
      ERR_clear_error();
      int r = SSL_do_handshake(c.ssl);
      if (r != 1) {
        int e = SSL_get_error(c.ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return true;
        ERR_clear_error();
        failed_++;
        return false;
      }
      c.open = true;
      handshakes_++;
      peer(c);
      const unsigned char* a = nullptr;
      unsigned int alen = 0;
      SSL_get0_alpn_selected(c.ssl, &a, &alen);
      if (c.h2Native && alen == 2 && a[0] == 'h' && a[1] == '2' && h2gw::available()) {
        if (!startH2(c)) return false;
      } else {
        ready(c, c.jsEnd, std::string(reinterpret_cast<const char*>(a), alen));
        c.jsEnd = -1;
      }
    }
    if (c.h2) return stepH2(c);
    for (bool moved = true; moved;) {
      moved = false;
      // Client -> JS.
      while (!c.tlsEof && c.toPlain.size() < kMaxPending && (c.tcpIn || SSL_has_pending(c.ssl))) {
        size_t n = 0;
        ERR_clear_error();
        if (SSL_read_ex(c.ssl, scratch_.get(), kRead, &n) == 1) {
          c.toPlain.append(scratch_.get(), n);
          continue;
        }
        if (!readStopped(c)) return false;
        break;
      }
      if (!c.toPlain.empty()) {
        ssize_t n = send(c.plain, c.toPlain.data(), c.toPlain.size(), MSG_NOSIGNAL);
        if (n > 0) {
          c.toPlain.erase(0, static_cast<size_t>(n));
          moved = true;
        } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
          return false;
        }
      }
      if (c.tlsEof && c.toPlain.empty() && !c.plainShut) {
        shutdown(c.plain, SHUT_WR);
        c.plainShut = true;
      }
      // JS -> client.
      if (c.toTls.empty() && !c.plainEof && c.plainIn) {
        ssize_t n = recv(c.plain, scratch_.get(), kRead, 0);
        if (n > 0) {
          c.toTls.assign(scratch_.get(), static_cast<size_t>(n));
          // A short read drained the socket (a stream socket returns what it holds), unless an EOF
          // waits behind the data (its edge was this wake-up's: none would come again).
          if (static_cast<size_t>(n) < kRead && !c.plainHup) c.plainIn = false;
        } else if (n == 0) {
          c.plainEof = true;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
          c.plainIn = false;
        } else {
          return false;
        }
      }
      if (!flushTls(c, moved)) return false;
      if (c.plainEof && c.toTls.empty() && !c.tlsShut) endTls(c);
    }
    return true;
  }

  // What an SSL_read_ex that returned 0 means, for both kinds of connection: nothing more to read
  // now (the socket is drained, or OpenSSL must write first), or the client ended (close_notify, or
  // a plain EOF: clients often skip close_notify), both true; false: the connection failed.
  bool readStopped(Conn& c) {
    int e = SSL_get_error(c.ssl, 0);
    if (e == SSL_ERROR_WANT_READ) {
      c.tcpIn = false;  // epoll says when more arrives
      return true;
    }
    if (e == SSL_ERROR_WANT_WRITE) return true;
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0) ||
        (e == SSL_ERROR_SSL && ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
      c.tlsEof = true;
      ERR_clear_error();
      return true;
    }
    ERR_clear_error();
    return false;
  }

  // Encrypts what c.toTls holds to the client, as much as the socket takes (the rest stays for the
  // next EPOLLOUT). Sets `moved` when bytes went; false: the connection failed.
  bool flushTls(Conn& c, bool& moved) {
    if (c.toTls.empty() || c.tlsShut) return true;
    size_t n = 0;
    ERR_clear_error();
    if (SSL_write_ex(c.ssl, c.toTls.data(), c.toTls.size(), &n) == 1) {
      c.toTls.erase(0, n);
      moved = true;
      return true;
    }
    int e = SSL_get_error(c.ssl, 0);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) return true;
    ERR_clear_error();
    return false;
  }

  // The client's direction is done: close_notify (best effort: a full buffer just loses it), then FIN.
  void endTls(Conn& c) {
    ERR_clear_error();
    SSL_shutdown(c.ssl);
    ERR_clear_error();
    shutdown(c.tcp, SHUT_WR);
    c.tlsShut = true;
  }

  // The client's name and address, for X-Forwarded-For and logs (the plaintext socket has none).
  void peer(Conn& c) {
    const char* sni = SSL_get_servername(c.ssl, TLSEXT_NAMETYPE_host_name);
    c.servername = sni ? sni : "";
    sockaddr_storage ss{};
    socklen_t sl = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = {0};
    if (getpeername(c.tcp, reinterpret_cast<sockaddr*>(&ss), &sl) == 0) {
      if (ss.ss_family == AF_INET) {
        auto* in = reinterpret_cast<sockaddr_in*>(&ss);
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        c.port = ntohs(in->sin_port);
        c.family = 4;
      } else if (ss.ss_family == AF_INET6) {
        auto* in = reinterpret_cast<sockaddr_in6*>(&ss);
        inet_ntop(AF_INET6, &in->sin6_addr, ip, sizeof ip);
        c.port = ntohs(in->sin6_port);
        c.family = 6;
      }
      c.address = ip;
    }
  }

  // Hands JS a plaintext connection (fd: its end) of client connection c.
  void ready(const Conn& c, int fd, const std::string& alpn) {
    auto* r = new Ready{c.ctx, c.id, fd, alpn, c.servername, c.address, c.port, c.family};
    if (napi_call_threadsafe_function(tsfn_, r, napi_tsfn_nonblocking) != napi_ok) {
      close(r->fd);
      delete r;
    }
  }

  // An h2 client: the session is terminated here; the socketpair made for JS is not needed.
  bool startH2(Conn& c) {
    for (int* f : {&c.plain, &c.jsEnd})
      if (*f >= 0) {
        close(*f);
        *f = -1;
      }
    const uint64_t connId = c.id;
    h2gw::Host host;
    host.open = [this, connId](uint64_t& uid) -> int {
      auto it = conns_.find(connId);
      if (it == conns_.end()) return -1;
      int sp[2];
      if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) < 0) return -1;
      uid = ++lastId_;
      epoll_event e{};
      e.events = EPOLLIN | EPOLLET | EPOLLRDHUP;  // EPOLLOUT only while a send found it full
      e.data.u64 = (uid << 2) | 2;
      if (epoll_ctl(ep_, EPOLL_CTL_ADD, sp[0], &e) < 0) {
        close(sp[0]);
        close(sp[1]);
        return -1;
      }
      ups_[uid] = connId;
      h2Conns_++;
      uint64_t open = ++h2Open_;
      for (uint64_t p = h2Peak_.load(); open > p && !h2Peak_.compare_exchange_weak(p, open);) {
      }
      ready(*it->second, sp[1], "http/1.1");
      return sp[0];
    };
    host.close = [this](uint64_t uid, int fd) {
      if (fd >= 0) close(fd);
      if (ups_.erase(uid)) h2Open_--;
    };
    host.wantWrite = [this](uint64_t uid, int fd, bool out) {
      epoll_event e{};
      e.events = EPOLLIN | EPOLLET | EPOLLRDHUP | (out ? static_cast<uint32_t>(EPOLLOUT) : 0u);
      e.data.u64 = (uid << 2) | 2;
      epoll_ctl(ep_, EPOLL_CTL_MOD, fd, &e);
    };
    host.drainMs = c.h2IdleMs;
    c.h2 = std::make_unique<h2gw::Gateway>(std::move(host));
    if (!c.h2->ok()) return false;
    h2Sessions_++;
    return true;
  }

  // An h2 connection: decrypted bytes into the session, its frames out, until both ways ended.
  bool stepH2(Conn& c) {
    for (bool moved = true; moved;) {
      moved = false;
      while (!c.tlsEof && (c.tcpIn || SSL_has_pending(c.ssl))) {
        size_t n = 0;
        ERR_clear_error();
        if (SSL_read_ex(c.ssl, scratch_.get(), kRead, &n) == 1) {
          if (!c.h2->recv(reinterpret_cast<const uint8_t*>(scratch_.get()), n)) {
            // Not HTTP/2 as nghttp2 reads it: what it queued (a GOAWAY) goes out best effort.
            std::string last;
            c.h2->output(last, kMaxPending);
            if (!last.empty()) SSL_write(c.ssl, last.data(), static_cast<int>(last.size()));
            return false;
          }
          moved = true;
          continue;
        }
        if (!readStopped(c)) return false;
        break;
      }
      if (c.tlsEof && !c.plainShut) {
        c.h2->clientEof();
        c.plainShut = true;
      }
      c.h2->work();
      if (c.toTls.empty() && !c.tlsShut && !c.h2->output(c.toTls, kRead * 4)) return false;
      if (!flushTls(c, moved)) return false;
      if (c.toTls.empty() && !c.tlsShut && c.h2->done()) {
        endTls(c);
        c.plainShut = true;
      }
    }
    return true;
  }

  void finish(Conn& c, bool clean) {
    if (!clean && c.open && c.tcp >= 0) {
      // A failed side: the client sees the connection fail (RST), not a clean end.
      linger lg{1, 0};
      setsockopt(c.tcp, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    closeConn(c);
    active_--;
  }

  void closeConn(Conn& c) {
    c.h2.reset();  // closes its connections into JS
    if (c.ssl) SSL_free(c.ssl);
    c.ssl = nullptr;
    for (int* f : {&c.tcp, &c.plain, &c.jsEnd})
      if (*f >= 0) {
        close(*f);  // closing drops the epoll registration too
        *f = -1;
      }
  }

  napi_threadsafe_function tsfn_;
  EpollThread<Cmd> loop_;
  int ep_ = -1;  // loop_'s epoll set
  std::mutex ctxMu_;
  std::unordered_map<uint32_t, std::unique_ptr<Context>> ctxs_;  // under ctxMu_
  uint32_t lastCtx_ = 0;
  std::atomic<uint64_t> lastId_{0};
  // Owned by the thread:
  std::unordered_map<uint64_t, std::unique_ptr<Conn>> conns_;
  std::unordered_map<uint64_t, uint64_t> ups_;  // an h2 session's connection into JS -> its client connection
  std::unique_ptr<char[]> scratch_;
};

ThreadModule<Front> g_module;

void callJs(napi_env env, napi_value fn, void*, void* data) {
  std::unique_ptr<Ready> r(static_cast<Ready*>(data));
  if (!env || !fn) {
    close(r->fd);
    return;
  }
  napi_value argv[8], undefined;
  napi_create_uint32(env, r->ctx, &argv[0]);
  napi_create_double(env, static_cast<double>(r->id), &argv[1]);
  napi_create_int32(env, r->fd, &argv[2]);
  napi_create_string_utf8(env, r->alpn.data(), r->alpn.size(), &argv[3]);
  napi_create_string_utf8(env, r->servername.data(), r->servername.size(), &argv[4]);
  napi_create_string_utf8(env, r->address.data(), r->address.size(), &argv[5]);
  napi_create_int32(env, r->port, &argv[6]);
  napi_create_int32(env, r->family, &argv[7]);
  napi_get_undefined(env, &undefined);
  napi_call_function(env, undefined, fn, 8, argv, nullptr);
}

Front* frontOf(napi_env env) {
  return g_module.of(env, "wrenn-native: the TLS front is not started in this thread (call tlsFrontStart first)");
}

bool bufferArg(napi_env env, napi_value v, std::string& out) {
  bool is = false;
  if (napi_is_buffer(env, v, &is) != napi_ok || !is) return false;
  void* data = nullptr;
  size_t len = 0;
  napi_get_buffer_info(env, v, &data, &len);
  out.assign(static_cast<const char*>(data), len);
  return true;
}

// tlsFrontStart(onReady(ctxId, connId, fd, alpn, servername, address, port, family 4|6|0))
napi_value Start(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value a[1];
  napi_get_cb_info(env, info, &argc, a, nullptr, nullptr);
  if (argc < 1) return throwError(env, "tlsFrontStart(onReady) needs the callback");
  if (g_module.instance) return throwError(env, "wrenn-native: the TLS front is already started");
  // The listener keeps the process alive, not the front.
  g_module.start(env, a[0], "wrenn-tls-front", callJs, "tlsFrontStart: onReady must be a function",
                 [](napi_threadsafe_function tsfn) { return new Front(tsfn); });
  return nullptr;
}

// tlsFrontContext(certPem: Buffer, keyPem: Buffer, handshakeMs, h2Native?, h2IdleMs?) -> ctxId. The
// certificate file may hold a chain (leaf first). h2Native true: h2 connections are terminated in
// the thread (their streams reach JS as HTTP/1.1 connections); else JS gets their plaintext like
// any other. h2IdleMs (default handshakeMs): see Context.
napi_value NewContext(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value a[5];
  napi_get_cb_info(env, info, &argc, a, nullptr, nullptr);
  Front* f = frontOf(env);
  if (!f) return nullptr;
  std::string cert, key;
  if (argc < 3 || !bufferArg(env, a[0], cert) || !bufferArg(env, a[1], key))
    return throwError(env, "tlsFrontContext(certPem, keyPem, handshakeMs) needs two Buffers and a number");
  double hs = numberArg(env, a[2]);
  if (!(hs >= 100)) return throwError(env, "tlsFrontContext: handshakeMs must be a number >= 100");
  auto c = std::make_unique<Context>();
  c->handshakeMs = static_cast<int64_t>(hs);
  bool h2 = false;
  if (argc >= 4) napi_get_value_bool(env, a[3], &h2);
  c->h2 = h2 && h2gw::available();
  c->h2IdleMs = c->handshakeMs;
  if (argc >= 5) {
    napi_valuetype t = napi_undefined;
    napi_typeof(env, a[4], &t);
    if (t != napi_undefined) {
      double idle = numberArg(env, a[4]);
      if (!(idle >= 100)) return throwError(env, "tlsFrontContext: h2IdleMs must be a number >= 100");
      c->h2IdleMs = static_cast<int64_t>(idle);
    }
  }
  ERR_clear_error();
  c->ssl = SSL_CTX_new(TLS_server_method());
  if (!c->ssl) return throwError(env, sslError("tlsFrontContext: SSL_CTX_new"));
  SSL_CTX_set_min_proto_version(c->ssl, TLS1_2_VERSION);
  SSL_CTX_set_options(c->ssl, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_alpn_select_cb(c->ssl, selectAlpn, nullptr);
  std::unique_ptr<BIO, decltype(&BIO_free)> cb(BIO_new_mem_buf(cert.data(), static_cast<int>(cert.size())), BIO_free);
  X509* leaf = PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr);
  if (!leaf || SSL_CTX_use_certificate(c->ssl, leaf) != 1) {
    if (leaf) X509_free(leaf);
    return throwError(env, sslError("tlsFrontContext: the certificate is not a PEM certificate"));
  }
  X509_free(leaf);
  while (X509* extra = PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr)) {
    if (SSL_CTX_add0_chain_cert(c->ssl, extra) != 1) {
      X509_free(extra);
      return throwError(env, sslError("tlsFrontContext: a chain certificate was refused"));
    }
  }
  ERR_clear_error();  // the loop ends on "no start line"
  std::unique_ptr<BIO, decltype(&BIO_free)> kb(BIO_new_mem_buf(key.data(), static_cast<int>(key.size())), BIO_free);
  EVP_PKEY* pk = PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr);
  if (!pk || SSL_CTX_use_PrivateKey(c->ssl, pk) != 1) {
    if (pk) EVP_PKEY_free(pk);
    return throwError(env, sslError("tlsFrontContext: the key is not a PEM private key"));
  }
  EVP_PKEY_free(pk);
  if (SSL_CTX_check_private_key(c->ssl) != 1)
    return throwError(env, sslError("tlsFrontContext: the key does not match the certificate"));
  napi_value out;
  napi_create_uint32(env, f->addContext(std::move(c)), &out);
  return out;
}

// tlsFrontAdd(ctxId, fd) -> connId. fd is dup'ed: the caller closes its own.
napi_value Add(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value a[2];
  napi_get_cb_info(env, info, &argc, a, nullptr, nullptr);
  Front* f = frontOf(env);
  if (!f) return nullptr;
  if (argc < 2) return throwError(env, "tlsFrontAdd(ctxId, fd) needs both arguments");
  int fd = static_cast<int>(numberArg(env, a[1]));
  int type = 0;
  socklen_t len = sizeof type;
  if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM)
    return throwError(env, "tlsFrontAdd: fd " + std::to_string(fd) + " is not a stream socket");
  int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return throwError(env, std::string("tlsFrontAdd: dup failed: ") + strerror(errno));
  napi_value out;
  napi_create_double(env, static_cast<double>(f->add(static_cast<uint32_t>(numberArg(env, a[0])), dup)), &out);
  return out;
}

napi_value Drop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value a[1];
  napi_get_cb_info(env, info, &argc, a, nullptr, nullptr);
  Front* f = frontOf(env);
  if (!f) return nullptr;
  if (argc < 1) return throwError(env, "tlsFrontDrop(ctxId) needs the context id");
  f->drop(static_cast<uint32_t>(numberArg(env, a[0])));
  return nullptr;
}

// tlsFrontStats(resetPeak?) -> counters; resetPeak true starts h2ConnectionsPeak again from now.
napi_value Stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value a[1];
  napi_get_cb_info(env, info, &argc, a, nullptr, nullptr);
  bool reset = false;
  if (argc >= 1) napi_get_value_bool(env, a[0], &reset);
  napi_value o, v;
  napi_create_object(env, &o);
  const char* names[9] = {"active",    "handshakes",        "failed",           "h2Sessions",  "h2Connections",
                          "h2Streams", "h2ConnectionsOpen", "h2ConnectionsPeak", "h2IdleClosed"};
  double vals[9] = {0, 0, 0, 0, 0, static_cast<double>(h2gw::g_streams.load()), 0, 0, 0};
  if (Front* f = g_module.instance) {
    vals[0] = static_cast<double>(f->active_.load());
    vals[1] = static_cast<double>(f->handshakes_.load());
    vals[2] = static_cast<double>(f->failed_.load());
    vals[3] = static_cast<double>(f->h2Sessions_.load());
    vals[4] = static_cast<double>(f->h2Conns_.load());
    vals[6] = static_cast<double>(f->h2Open_.load());
    vals[7] = static_cast<double>(f->h2Peak_.load());
    vals[8] = static_cast<double>(f->h2IdleClosed_.load());
    if (reset) f->resetPeak();
  }
  for (int i = 0; i < 9; i++) {
    napi_create_double(env, vals[i], &v);
    napi_set_named_property(env, o, names[i], v);
  }
  return o;
}

}  // namespace

void registerTlsFront(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"tlsFrontStart", nullptr, Start, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"tlsFrontContext", nullptr, NewContext, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"tlsFrontAdd", nullptr, Add, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"tlsFrontDrop", nullptr, Drop, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"tlsFrontStats", nullptr, Stats, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}

}  // namespace wrenn
