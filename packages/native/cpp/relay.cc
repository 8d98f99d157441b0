// The byte relay: Node hands over two connected sockets (dup'ed here, so Node can close its own
// fds), and one thread moves bytes between them with epoll until both directions ended, one side
// failed, the pair sat idle too long, or JS closed it (by id or by group key). Each direction:
// read from its source only while nothing of it waits for the destination (back-pressure), an EOF
// becomes shutdown(SHUT_WR) on the destination once everything before it went out (half-close).
// Two ways of moving bytes: "copy" (recv into a scratch buffer, send; only a partial send keeps a
// per-direction buffer) and "splice" (socket -> pipe -> socket in the kernel).
// JS learns of each finished pair through a thread-safe function: id, bytes each way, reason.
//
// HTTP mode (a pair added with a route): the relay also does the sandbox proxy's per-request work
// for a keep-alive connection to one capsule port (http1.h): each request head is checked against
// the route and rewritten, each response head read for its framing (and Location rewritten for path
// routing). A request it does not take (another route, an upgrade, unusual framing), the upstream
// closing between requests, or yieldGroup() (the capsule paused) hands the client connection back
// to JS once every earlier response went out: reason "handback" with the client's fd and the bytes
// read from it but not forwarded; the upstream is closed (JS dials again if it needs it). A client's
// EOF ends the pair even with a response under way (HTTP mode only: tunnels pass half-closes on).
#include "relay.h"

#include "epoll-thread.h"
#include "http1.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <stdexcept>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace wrenn {
namespace {

constexpr size_t kChunk = 64 * 1024;
// Reads per direction per wake-up: a busy pair must not starve the others.
constexpr int kRounds = 8;
constexpr int kSweepMs = 100;

enum Reason { kDone = 0, kIdle, kClosed, kGroup, kError, kShutdown, kHandback };
const char* const kReasonNames[] = {"done", "idle", "closed", "group", "error", "shutdown", "handback"};
// A request head that has not arrived whole after this long gets a 408 (as in pipe.ts).
constexpr int64_t kHeadTimeoutMs = 10000;
// The same body as the JS paths (control-plane proxy/pipe.ts, host-agent proxy/guest-errors.ts).
const std::string kTimeoutBody = "{\"message\":\"request head not received within 10000 ms\",\"code\":408}";
const std::string kTimeout408 = "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: " +
                                std::to_string(kTimeoutBody.size()) + "\r\nconnection: close\r\n\r\n" + kTimeoutBody;

// Bytes from fd[d] to fd[1 - d].
struct Dir {
  std::unique_ptr<char[]> buf;  // copy mode: what a partial send left
  size_t off = 0;
  size_t len = 0;               // copy mode: unsent bytes in buf; splice mode: bytes in the pipe
  int pipe[2] = {-1, -1};       // splice mode
  bool eof = false;             // the source sent its FIN
  bool shut = false;            // the destination's write side is shut down
  uint64_t bytes = 0;
  std::string out;              // HTTP mode: what goes to the destination next (len: unsent part)
};

// HTTP mode's state: direction 0 carries requests (client -> upstream), 1 responses.
struct HttpConn {
  http1::Route route;
  bool rewriteLocation = false;
  enum ReqState { ReqHead, ReqBody } req = ReqHead;
  http1::Body reqBody;
  std::string reqIn;  // client bytes not yet forwarded (a partial head, or what JS gets back)
  enum ResState { ResHead, ResBody, ResClose } res = ResHead;
  http1::Body resBody;
  std::string resIn;
  std::deque<bool> inflight;  // requests sent and not yet answered: whether each was a HEAD
  bool yielding = false;      // the next request is for JS: hand back once idle
  bool closeAfter = false;    // the response being read said close
  bool closing = false;       // ... and it is complete: end the client's side once it is out
  int64_t headSince = 0;      // when the partial head in reqIn began (0: none)
};

struct Pair {
  uint64_t id = 0;
  int fd[2] = {-1, -1};
  uint32_t mask[2] = {0, 0};
  bool registered[2] = {false, false};
  Dir dir[2];
  std::string group;
  int64_t idleMs = 0;
  int64_t last = 0;
  std::unique_ptr<HttpConn> http;
};

struct Done {
  uint64_t id;
  uint64_t bytes[2];
  int reason;
  int err;
  int fd = -1;       // handback: the client connection, now JS's
  std::string rest;  // handback: bytes read from it and not forwarded
};

struct Cmd {
  enum Kind { Add, Close, CloseGroup, YieldGroup } kind;
  std::unique_ptr<Pair> pair;
  uint64_t id = 0;
  std::string group;
  std::string answer;  // CloseGroup: sent to HTTP-mode clients whose request waits for its answer
};

class Relay {
 public:
  Relay(napi_threadsafe_function tsfn, bool splice) : tsfn_(tsfn), splice_(splice), loop_("relay") {
    ep_ = loop_.epfd();
    if (const char* sp = getenv("WRENN_RELAY_SPIN")) spin_ = atoi(sp);
    loop_.start("wrenn-relay", [this] { run(); });
  }

  ~Relay() {
    loop_.stop();
    for (auto& kv : pairs_) closePair(*kv.second);
    for (auto& c : loop_.take())
      if (c.pair) closePair(*c.pair);
  }

  bool splice() const { return splice_; }

  uint64_t add(std::unique_ptr<Pair> p) {
    p->id = ++lastId_;
    uint64_t id = p->id;
    active_++;
    added_++;
    push(Cmd{Cmd::Add, std::move(p), 0, {}, {}});
    return id;
  }
  void closeId(uint64_t id) { push(Cmd{Cmd::Close, nullptr, id, {}, {}}); }
  void closeGroup(const std::string& g, const std::string& answer) { push(Cmd{Cmd::CloseGroup, nullptr, 0, g, answer}); }
  void yieldGroup(const std::string& g) { push(Cmd{Cmd::YieldGroup, nullptr, 0, g, {}}); }

  std::atomic<uint64_t> active_{0}, added_{0}, bytes_{0};

 private:
  void push(Cmd c) { loop_.push(std::move(c)); }

  void run() {
    std::vector<epoll_event> evs(256);
    scratch_.reset(new char[kChunk]);
    int64_t lastSweep = monotonicMs();
    int emptyPolls = 0;
    while (!loop_.stopping()) {
      // Busy-poll budget: a few non-blocking polls after work before sleeping (saves wake-ups).
      int timeout = emptyPolls < spin_ ? 0 : (timed_ > 0 ? kSweepMs : -1);
      int n = epoll_wait(ep_, evs.data(), static_cast<int>(evs.size()), timeout);
      if (n < 0 && errno != EINTR) break;
      emptyPolls = n > 0 ? 0 : emptyPolls + 1;
      now_ = monotonicMs();
      for (int i = 0; i < n; i++) {
        uint64_t key = evs[i].data.u64;
        if (key == 0) {
          commands();
          continue;
        }
        auto it = pairs_.find(key >> 1);
        if (it == pairs_.end()) continue;
        // Only the direction(s) this event concerns: a recv bound to fail costs a syscall per message.
        int side = static_cast<int>(key & 1);
        uint32_t ev = evs[i].events;
        int dirs = (ev & (EPOLLERR | EPOLLHUP)) ? 3 : ((ev & EPOLLIN) ? 1 << side : 0) | ((ev & EPOLLOUT) ? 1 << (1 - side) : 0);
        progress(*it->second, dirs);
      }
      if (timed_ > 0 && now_ - lastSweep >= kSweepMs) {
        lastSweep = now_;
        std::vector<uint64_t> idle, slow;
        for (auto& kv : pairs_) {
          if (kv.second->idleMs > 0 && now_ - kv.second->last >= kv.second->idleMs) idle.push_back(kv.first);
          else if (kv.second->http && kv.second->http->headSince > 0 && now_ - kv.second->http->headSince >= kHeadTimeoutMs) slow.push_back(kv.first);
        }
        for (uint64_t id : idle) finish(id, kIdle, 0);
        for (uint64_t id : slow) headTimeout(id);
      }
    }
  }

  void commands() {
    for (auto& c : loop_.take()) {
      if (c.kind == Cmd::Add) {
        Pair& p = *c.pair;
        p.last = now_;
        if (p.idleMs > 0) timed_++;
        uint64_t id = p.id;
        pairs_[id] = std::move(c.pair);
        // HTTP mode: what Node had read from either side before the handover is parsed first.
        if (p.http && (!feedRequest(p, nullptr, 0) || !feedResponse(p, nullptr, 0))) {
          finish(id, kError, EPROTO);
          continue;
        }
        progress(p, 3);
      } else if (c.kind == Cmd::Close) {
        finish(c.id, kClosed, 0);
      } else if (c.kind == Cmd::CloseGroup) {
        std::vector<uint64_t> ids;
        for (auto& kv : pairs_)
          if (kv.second->group == c.group) ids.push_back(kv.first);
        for (uint64_t id : ids) {
          Pair& p = *pairs_[id];
          // A request still waiting, nothing of its answer sent: the client gets JS's answer (E2B's
          // 502 "The sandbox was not found") instead of a bare close. Best effort, never blocking.
          if (!c.answer.empty() && p.http && !p.http->inflight.empty() && p.http->res == HttpConn::ResHead &&
              p.http->resIn.empty() && p.dir[1].len == 0) {
            ssize_t w = send(p.fd[0], c.answer.data(), c.answer.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)w;
          }
          finish(id, kGroup, 0);
        }
      } else {
        std::vector<Pair*> ps;
        for (auto& kv : pairs_)
          if (kv.second->group == c.group && kv.second->http) ps.push_back(kv.second.get());
        for (Pair* p : ps) {
          p->http->yielding = true;
          progress(*p, 0);
        }
      }
    }
  }

  // Moves what can move in direction d; false with errno set when a socket failed.
  bool move(Pair& p, int d) {
    Dir& D = p.dir[d];
    int src = p.fd[d], dst = p.fd[1 - d];
    for (int round = 0; round < kRounds; round++) {
      if (D.len > 0) {
        ssize_t w = splice_ ? ::splice(D.pipe[0], nullptr, dst, nullptr, D.len, SPLICE_F_NONBLOCK | SPLICE_F_MOVE)
                            : send(dst, D.buf.get() + D.off, D.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
          if (errno == EAGAIN || errno == EINTR) return true;
          return false;
        }
        D.off += w;
        D.len -= w;
        D.bytes += w;
        bytes_ += w;
        p.last = now_;
        if (D.len > 0) return true;  // the destination is full: wait until it can take more
        D.off = 0;
        if (!splice_) D.buf.reset();
      }
      if (D.eof) {
        if (!D.shut) {
          D.shut = true;
          if (shutdown(dst, SHUT_WR) < 0 && errno != ENOTCONN) return false;
        }
        return true;
      }
      ssize_t r;
      if (splice_) {
        r = ::splice(src, nullptr, D.pipe[1], nullptr, kChunk, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
      } else {
        r = recv(src, scratch_.get(), kChunk, MSG_DONTWAIT);
      }
      if (r == 0) {
        D.eof = true;
        continue;
      }
      if (r < 0) {
        if (errno == EAGAIN || errno == EINTR) return true;
        return false;
      }
      p.last = now_;
      if (splice_) {
        D.len = r;
      } else {
        ssize_t w = send(dst, scratch_.get(), r, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
          if (errno != EAGAIN && errno != EINTR) return false;
          w = 0;
        }
        D.bytes += w;
        bytes_ += w;
        if (w < r) {
          D.buf.reset(new char[kChunk]);
          memcpy(D.buf.get(), scratch_.get() + w, r - w);
          D.off = 0;
          D.len = r - w;
          return true;
        }
      }
      // A short read drained the socket: epoll says when more arrives (saves a recv per message).
      if (static_cast<size_t>(r) < kChunk && !splice_) return true;
    }
    return true;
  }

  // dirs: bit d set to move direction d.
  void progress(Pair& p, int dirs) {
    if (p.http) return progressHttp(p, dirs);
    for (int d = 0; d < 2; d++) {
      if ((dirs & (1 << d)) && !move(p, d)) return finish(p.id, kError, errno);
    }
    const Dir &a = p.dir[0], &b = p.dir[1];
    if (a.eof && a.shut && a.len == 0 && b.eof && b.shut && b.len == 0) return finish(p.id, kDone, 0);
    watch(p, {!p.dir[0].eof && p.dir[0].len == 0, !p.dir[1].eof && p.dir[1].len == 0});
  }

  // Sets what epoll waits for: fd[i] is read for direction i (when read[i]) and written for 1 - i.
  void watch(Pair& p, std::array<bool, 2> read) {
    for (int i = 0; i < 2; i++) {
      uint32_t want = (read[i] ? uint32_t{EPOLLIN} : 0u) | (p.dir[1 - i].len > 0 ? uint32_t{EPOLLOUT} : 0u);
      if (want == p.mask[i] && (want == 0) == !p.registered[i]) continue;
      epoll_event e{};
      e.events = want;
      e.data.u64 = (p.id << 1) | static_cast<uint64_t>(i);
      // An fd with nothing to wait for leaves the set: a hung-up socket would wake us for nothing.
      if (want == 0) {
        epoll_ctl(ep_, EPOLL_CTL_DEL, p.fd[i], nullptr);
        p.registered[i] = false;
      } else {
        if (epoll_ctl(ep_, p.registered[i] ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, p.fd[i], &e) < 0) return finish(p.id, kError, errno);
        p.registered[i] = true;
      }
      p.mask[i] = want;
    }
  }

  // HTTP mode's move: like move(), but bytes pass through feedRequest/feedResponse.
  bool moveHttp(Pair& p, int d) {
    Dir& D = p.dir[d];
    HttpConn& H = *p.http;
    int src = p.fd[d], dst = p.fd[1 - d];
    bool drained = false;
    for (int round = 0; round < kRounds; round++) {
      if (D.len > 0) {
        ssize_t w = send(dst, D.out.data() + D.off, D.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) return errno == EAGAIN || errno == EINTR;
        D.off += w;
        D.len -= w;
        D.bytes += w;
        bytes_ += w;
        p.last = now_;
        if (D.len > 0) return true;
        D.off = 0;
        D.out.clear();
      }
      if (drained || D.eof || H.closing || (d == 0 && holdRequests(H))) return true;
      ssize_t r = recv(src, scratch_.get(), kChunk, MSG_DONTWAIT);
      if (r == 0) {
        D.eof = true;
        return true;
      }
      if (r < 0) return errno == EAGAIN || errno == EINTR;
      p.last = now_;
      if (!(d == 0 ? feedRequest(p, scratch_.get(), r) : feedResponse(p, scratch_.get(), r))) {
        errno = EPROTO;
        return false;
      }
      // A short read drained the socket: send what it gave, then wait for epoll.
      drained = static_cast<size_t>(r) < kChunk;
    }
    return true;
  }

  // Client bytes in: complete request heads are checked and rewritten, bodies passed on. Stops at
  // a head JS must see (yielding). False on a malformed chunked body.
  bool feedRequest(Pair& p, const char* data, size_t n) {
    HttpConn& H = *p.http;
    Dir& D = p.dir[0];
    std::string& in = H.reqIn;
    if (n > 0) in.append(data, n);
    size_t i = 0;
    while (i < in.size()) {
      if (H.req == HttpConn::ReqHead) {
        if (H.yielding) break;  // a body under way still goes out; the next head is JS's
        size_t e = http1::headEnd(in, i);
        if (e == std::string::npos) {
          if (in.size() - i > http1::kMaxHead) H.yielding = true;  // JS answers 431
          break;
        }
        http1::RequestOut r;
        if (!http1::rewriteRequest(in.data() + i, e - i, H.route, r)) {
          H.yielding = true;
          break;
        }
        D.out += r.head;
        H.inflight.push_back(r.isHead);
        i = e;
        if (r.body != http1::RequestOut::None) {
          H.req = HttpConn::ReqBody;
          H.reqBody = r.body == http1::RequestOut::Length ? http1::Body::ofLength(r.length) : http1::Body::ofChunks();
        }
      } else {
        long k = H.reqBody.take(in.data() + i, in.size() - i);
        if (k < 0) return false;
        D.out.append(in, i, k);
        i += k;
        if (H.reqBody.done()) H.req = HttpConn::ReqHead;
      }
    }
    in.erase(0, i);
    bool partial = H.req == HttpConn::ReqHead && !in.empty() && !H.yielding;
    H.headSince = partial ? (H.headSince ? H.headSince : now_) : 0;
    D.len = D.out.size() - D.off;
    return true;
  }

  // Upstream bytes in: response heads read (and rewritten), bodies followed to find the next head.
  // False on anything malformed or unasked for.
  bool feedResponse(Pair& p, const char* data, size_t n) {
    HttpConn& H = *p.http;
    Dir& D = p.dir[1];
    std::string& in = H.resIn;
    if (n > 0) in.append(data, n);
    size_t i = 0;
    while (i < in.size() && !H.closing) {
      if (H.res == HttpConn::ResHead) {
        size_t e = http1::headEnd(in, i);
        if (e == std::string::npos) {
          if (in.size() - i > http1::kMaxHead) return false;
          break;
        }
        if (H.inflight.empty()) return false;
        http1::ResponseOut r;
        if (!http1::readResponse(in.data() + i, e - i, H.inflight.front(), H.rewriteLocation ? &H.route : nullptr, r)) return false;
        if (r.head.empty())
          D.out.append(in, i, e - i);
        else
          D.out += r.head;
        i = e;
        if (r.status < 200) continue;  // interim (100 Continue): the final answer follows
        H.closeAfter = r.close;
        if (r.body == http1::ResponseOut::None) {
          responseDone(H);
        } else if (r.body == http1::ResponseOut::Close) {
          H.res = HttpConn::ResClose;
        } else {
          H.res = HttpConn::ResBody;
          H.resBody = r.body == http1::ResponseOut::Length ? http1::Body::ofLength(r.length) : http1::Body::ofChunks();
        }
      } else if (H.res == HttpConn::ResBody) {
        long k = H.resBody.take(in.data() + i, in.size() - i);
        if (k < 0) return false;
        D.out.append(in, i, k);
        i += k;
        if (H.resBody.done()) responseDone(H);
      } else {
        D.out.append(in, i, std::string::npos);
        i = in.size();
      }
    }
    // After a closing response nothing more goes to the client.
    if (H.closing)
      in.clear();
    else
      in.erase(0, i);
    D.len = D.out.size() - D.off;
    return true;
  }

  // Yielding: the client is not read past the end of the request under way.
  static bool holdRequests(const HttpConn& H) { return H.yielding && H.req == HttpConn::ReqHead; }

  void responseDone(HttpConn& H) {
    H.inflight.pop_front();
    H.res = HttpConn::ResHead;
    if (H.closeAfter) H.closing = true;
  }

  void progressHttp(Pair& p, int dirs) {
    HttpConn& H = *p.http;
    for (int d = 0; d < 2; d++)
      if ((dirs & (1 << d)) && !moveHttp(p, d)) return finish(p.id, kError, errno);
    Dir &rq = p.dir[0], &rs = p.dir[1];
    if (H.closing && rs.len == 0) return endClient(p);
    bool answered = H.inflight.empty() && H.res == HttpConn::ResHead && H.resIn.empty() && rs.len == 0;
    if (rs.eof) {
      if (H.res == HttpConn::ResClose) {
        // The body ran to the upstream's end: so does the client's connection.
        if (rs.len == 0) return endClient(p);
      } else if (!answered) {
        return finish(p.id, kError, 0);  // cut off mid-response: the client must see it fail
      } else if (rq.eof) {
        return finish(p.id, kDone, 0);
      } else {
        // The server closed an idle keep-alive connection: JS dials again for the next request.
        return finish(p.id, H.req == HttpConn::ReqHead ? kHandback : kError, 0);
      }
    }
    // The client ended its side: with nothing pending the connection is done; with an answer still
    // pending it is abandoned, as Node's HTTP server (and E2B's Go proxy) treat a client's EOF, so
    // the upstream sees its request end instead of a connection that waits on a gone client.
    if (rq.eof && !H.closing) return finish(p.id, kDone, 0);
    if (H.yielding && answered && H.req == HttpConn::ReqHead && rq.len == 0) return finish(p.id, kHandback, 0);
    watch(p, {!rq.eof && rq.len == 0 && !holdRequests(H) && !H.closing, !rs.eof && rs.len == 0 && !H.closing});
  }

  // Ends the client's side after what was sent to it, and the pair with it.
  void endClient(Pair& p) {
    shutdown(p.fd[0], SHUT_WR);
    finish(p.id, kDone, 0);
  }

  void headTimeout(uint64_t id) {
    auto it = pairs_.find(id);
    if (it == pairs_.end()) return;
    Pair& p = *it->second;
    HttpConn& H = *p.http;
    if (!(H.inflight.empty() && H.res == HttpConn::ResHead && p.dir[1].len == 0)) return finish(id, kError, 0);
    ssize_t w = send(p.fd[0], kTimeout408.data(), kTimeout408.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)w;
    endClient(p);
  }

  void closePair(Pair& p) {
    for (int i = 0; i < 2; i++) {
      if (p.registered[i]) epoll_ctl(ep_, EPOLL_CTL_DEL, p.fd[i], nullptr);
      p.registered[i] = false;
      if (p.fd[i] >= 0) close(p.fd[i]);
      p.fd[i] = -1;
      for (int& f : p.dir[i].pipe) {
        if (f >= 0) close(f);
        f = -1;
      }
    }
  }

  void finish(uint64_t id, int reason, int err) {
    auto it = pairs_.find(id);
    if (it == pairs_.end()) return;
    std::unique_ptr<Pair> p = std::move(it->second);
    pairs_.erase(it);
    if (p->idleMs > 0) timed_--;
    if (reason == kError) {
      // A failed side: the other peer must see the connection fail too (RST), not a clean end.
      linger lg{1, 0};
      for (int f : p->fd) setsockopt(f, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    auto* d = new Done{id, {p->dir[0].bytes, p->dir[1].bytes}, reason, err, -1, {}};
    if (reason == kHandback) {
      // The client connection goes back to JS as it is; only the upstream is closed.
      if (p->registered[0]) epoll_ctl(ep_, EPOLL_CTL_DEL, p->fd[0], nullptr);
      p->registered[0] = false;
      d->fd = p->fd[0];
      p->fd[0] = -1;
      d->rest = std::move(p->http->reqIn);
    }
    closePair(*p);
    active_--;
    if (napi_call_threadsafe_function(tsfn_, d, napi_tsfn_nonblocking) != napi_ok) {
      if (d->fd >= 0) close(d->fd);
      delete d;
    }
  }

  napi_threadsafe_function tsfn_;
  bool splice_;
  int spin_ = 0;
  EpollThread<Cmd> loop_;
  int ep_ = -1;  // loop_'s epoll set
  std::atomic<uint64_t> lastId_{0};
  // Owned by the relay thread:
  std::unordered_map<uint64_t, std::unique_ptr<Pair>> pairs_;
  std::unique_ptr<char[]> scratch_;
  int64_t now_ = 0;
  int timed_ = 0;
};

// One relay per process, owned by the env that started it (the main thread's).
ThreadModule<Relay> g_module;

void callJs(napi_env env, napi_value fn, void*, void* data) {
  std::unique_ptr<Done> d(static_cast<Done*>(data));
  if (!env || !fn) {
    if (d->fd >= 0) close(d->fd);
    return;
  }
  napi_value argv[7], undefined;
  napi_create_double(env, static_cast<double>(d->id), &argv[0]);
  napi_create_double(env, static_cast<double>(d->bytes[0]), &argv[1]);
  napi_create_double(env, static_cast<double>(d->bytes[1]), &argv[2]);
  napi_create_string_utf8(env, kReasonNames[d->reason], NAPI_AUTO_LENGTH, &argv[3]);
  napi_create_int32(env, d->err, &argv[4]);
  napi_get_undefined(env, &undefined);
  if (d->fd >= 0) {
    napi_create_int32(env, d->fd, &argv[5]);
    void* bytes = nullptr;
    napi_create_buffer_copy(env, d->rest.size(), d->rest.data(), &bytes, &argv[6]);
  } else {
    argv[5] = argv[6] = undefined;
  }
  napi_call_function(env, undefined, fn, 7, argv, nullptr);
}

Relay* relayOf(napi_env env) {
  return g_module.of(env, "wrenn-native: the relay is not started in this thread (call relayStart first)");
}

std::string str(napi_env env, napi_value v) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, nullptr, 0, &len) != napi_ok) return {};
  std::string s(len, '\0');
  napi_get_value_string_utf8(env, v, s.data(), len + 1, &len);
  return s;
}

// relayStart(onDone(id, bytesAtoB, bytesBtoA, reason, errno), mode: 'copy' | 'splice')
napi_value Start(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value a[2];
  napi_get_cb_info(env, info, &argc, a, nullptr, nullptr);
  if (argc < 2) return throwError(env, "relayStart(onDone, mode) needs both arguments");
  if (g_module.instance) return throwError(env, "wrenn-native: the relay is already started");
  std::string mode = str(env, a[1]);
  if (mode != "copy" && mode != "splice") return throwError(env, "relayStart: mode must be 'copy' or 'splice', got '" + mode + "'");
  // Idle pairs must not keep the process alive; JS refs the function while pairs are active (relayRef).
  g_module.start(env, a[0], "wrenn-relay", callJs, "relayStart: onDone must be a function",
                 [&](napi_threadsafe_function tsfn) { return new Relay(tsfn, mode == "splice"); });
  return nullptr;
}

napi_value prop(napi_env env, napi_value o, const char* name) {
  napi_value v = nullptr;
  napi_get_named_property(env, o, name, &v);
  return v;
}

bool isType(napi_env env, napi_value v, napi_valuetype t) {
  napi_valuetype got = napi_undefined;
  return v && napi_typeof(env, v, &got) == napi_ok && got == t;
}

// The HTTP mode's options (relay.ts RelayHttp); a string is what is wrong with them.
std::string httpOptions(napi_env env, napi_value o, HttpConn& H) {
  http1::Route& r = H.route;
  std::string kind = str(env, prop(env, o, "kind"));
  if (kind == "path")
    r.kind = http1::Route::Path;
  else if (kind == "host")
    r.kind = http1::Route::Host;
  else if (kind == "header")
    r.kind = http1::Route::Header;
  else
    return "http.kind must be 'path', 'host' or 'header'";
  r.prefix = str(env, prop(env, o, "prefix"));
  if (r.kind == http1::Route::Path && r.prefix.empty()) return "http.prefix is required for path routing";
  napi_value host = prop(env, o, "host");
  r.hasHost = isType(env, host, napi_string);
  if (r.hasHost) r.host = str(env, host);
  r.sandboxId = str(env, prop(env, o, "sandboxId"));
  r.sandboxPort = str(env, prop(env, o, "sandboxPort"));
  r.remote = str(env, prop(env, o, "remote"));
  r.targetHost = str(env, prop(env, o, "targetHost"));
  r.targetPort = static_cast<int>(numberArg(env, prop(env, o, "targetPort")));
  napi_value transparent = prop(env, o, "transparent");
  if (isType(env, transparent, napi_boolean)) napi_get_value_bool(env, transparent, &r.transparent);
  H.rewriteLocation = r.kind == http1::Route::Path;
  // Where JS left the connection: requests in flight (HEAD or not) and the request body under way.
  napi_value inflight = prop(env, o, "inflight");
  bool isArray = false;
  if (inflight) napi_is_array(env, inflight, &isArray);
  if (!isArray) return "http.inflight must be an array of booleans";
  uint32_t n = 0;
  napi_get_array_length(env, inflight, &n);
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    bool b = false;
    napi_get_element(env, inflight, i, &e);
    napi_get_value_bool(env, e, &b);
    H.inflight.push_back(b);
  }
  std::string req = str(env, prop(env, o, "req"));
  double left = numberArg(env, prop(env, o, "reqLeft"));
  if (req == "length" && left > 0) {
    H.req = HttpConn::ReqBody;
    H.reqBody = http1::Body::ofLength(static_cast<uint64_t>(left));
  } else if (req == "chunked") {
    H.req = HttpConn::ReqBody;
    H.reqBody = http1::Body::ofChunks();
  } else if (req != "head") {
    return "http.req must be 'head', 'length' (with reqLeft > 0) or 'chunked'";
  }
  // Bytes Node read from either side that JS did not forward: parsed before anything new.
  const char* names[2] = {"clientBytes", "upstreamBytes"};
  std::string* into[2] = {&H.reqIn, &H.resIn};
  for (int i = 0; i < 2; i++) {
    napi_value b = prop(env, o, names[i]);
    bool isBuffer = false;
    if (isType(env, b, napi_undefined)) continue;
    if (napi_is_buffer(env, b, &isBuffer) != napi_ok || !isBuffer) return std::string("http.") + names[i] + " must be a Buffer";
    void* data = nullptr;
    size_t len = 0;
    napi_get_buffer_info(env, b, &data, &len);
    into[i]->assign(static_cast<const char*>(data), len);
  }
  return {};
}

// relayAdd(fdA, fdB, group, idleMs[, http]) -> id. Both fds are dup'ed: the caller closes its own.
// With http (relay.ts RelayHttp), fdA is the client and fdB the upstream of an HTTP/1.1 connection.
napi_value Add(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value a[5];
  napi_get_cb_info(env, info, &argc, a, nullptr, nullptr);
  if (argc < 4) return throwError(env, "relayAdd(fdA, fdB, group, idleMs) needs four arguments");
  Relay* r = relayOf(env);
  if (!r) return nullptr;
  int fds[2] = {static_cast<int>(numberArg(env, a[0])), static_cast<int>(numberArg(env, a[1]))};
  double idle = numberArg(env, a[3]);
  if (!(idle >= 0)) return throwError(env, "relayAdd: idleMs must be a number >= 0 (0: no idle timeout)");
  auto p = std::make_unique<Pair>();
  p->group = str(env, a[2]);
  p->idleMs = static_cast<int64_t>(idle);
  if (argc >= 5 && isType(env, a[4], napi_object)) {
    p->http = std::make_unique<HttpConn>();
    std::string bad = httpOptions(env, a[4], *p->http);
    if (!bad.empty()) return throwError(env, "relayAdd: " + bad);
  }
  auto fail = [&](const std::string& m) {
    for (int i = 0; i < 2; i++) {
      if (p->fd[i] >= 0) close(p->fd[i]);
      for (int f : p->dir[i].pipe)
        if (f >= 0) close(f);
    }
    return throwError(env, m);
  };
  for (int i = 0; i < 2; i++) {
    int type = 0;
    socklen_t len = sizeof type;
    if (fds[i] < 0 || getsockopt(fds[i], SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM)
      return fail("relayAdd: fd " + std::to_string(fds[i]) + " is not a stream socket");
    p->fd[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
    if (p->fd[i] < 0) return fail(std::string("relayAdd: dup failed: ") + strerror(errno));
    int fl = fcntl(p->fd[i], F_GETFL);
    fcntl(p->fd[i], F_SETFL, fl | O_NONBLOCK);
    // HTTP mode always copies (it reads what it forwards).
    if (r->splice() && !p->http && pipe2(p->dir[i].pipe, O_CLOEXEC | O_NONBLOCK) < 0)
      return fail(std::string("relayAdd: pipe2 failed: ") + strerror(errno));
  }
  napi_value out;
  napi_create_double(env, static_cast<double>(r->add(std::move(p))), &out);
  return out;
}

napi_value CloseOne(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value a[1];
  napi_get_cb_info(env, info, &argc, a, nullptr, nullptr);
  Relay* r = relayOf(env);
  if (!r) return nullptr;
  if (argc < 1) return throwError(env, "relayClose(id) needs the pair's id");
  r->closeId(static_cast<uint64_t>(numberArg(env, a[0])));
  return nullptr;
}

napi_value CloseGroup(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value a[2];
  napi_get_cb_info(env, info, &argc, a, nullptr, nullptr);
  Relay* r = relayOf(env);
  if (!r) return nullptr;
  if (argc < 1) return throwError(env, "relayCloseGroup(group, answer?) needs the group key");
  napi_valuetype t = napi_undefined;
  if (argc >= 2) napi_typeof(env, a[1], &t);
  r->closeGroup(str(env, a[0]), t == napi_string ? str(env, a[1]) : std::string());
  return nullptr;
}

napi_value YieldGroup(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value a[1];
  napi_get_cb_info(env, info, &argc, a, nullptr, nullptr);
  Relay* r = relayOf(env);
  if (!r) return nullptr;
  if (argc < 1) return throwError(env, "relayYieldGroup(group) needs the group key");
  r->yieldGroup(str(env, a[0]));
  return nullptr;
}

napi_value Stats(napi_env env, napi_callback_info) {
  napi_value o, v;
  napi_create_object(env, &o);
  double active = g_module.instance ? static_cast<double>(g_module.instance->active_.load()) : 0;
  double added = g_module.instance ? static_cast<double>(g_module.instance->added_.load()) : 0;
  double bytes = g_module.instance ? static_cast<double>(g_module.instance->bytes_.load()) : 0;
  napi_create_double(env, active, &v);
  napi_set_named_property(env, o, "active", v);
  napi_create_double(env, added, &v);
  napi_set_named_property(env, o, "added", v);
  napi_create_double(env, bytes, &v);
  napi_set_named_property(env, o, "bytes", v);
  return o;
}

// relayRef(true|false): whether pending completions keep the event loop alive.
napi_value Ref(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value a[1];
  napi_get_cb_info(env, info, &argc, a, nullptr, nullptr);
  if (!relayOf(env)) return nullptr;
  bool on = false;
  if (argc > 0) napi_get_value_bool(env, a[0], &on);
  if (on)
    napi_ref_threadsafe_function(env, g_module.tsfn);
  else
    napi_unref_threadsafe_function(env, g_module.tsfn);
  return nullptr;
}

}  // namespace

void registerRelay(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"relayStart", nullptr, Start, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"relayAdd", nullptr, Add, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"relayClose", nullptr, CloseOne, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"relayCloseGroup", nullptr, CloseGroup, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"relayYieldGroup", nullptr, YieldGroup, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"relayStats", nullptr, Stats, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"relayRef", nullptr, Ref, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}

}  // namespace wrenn
