// HTTP/2 -> HTTP/1.1 in the TLS front's thread (see h2-gateway.h for why). nghttp2 comes from
// Node's own binary (it exports the symbols; only the headers come from libnghttp2-dev), as the
// front's OpenSSL does. Per stream: the request head is built from the h2 fields (nghttp2 has
// checked them: no connection-specific fields, no CR/LF/NUL, pseudo-fields present), a body without
// content-length goes chunked; the response head is read for its framing (http1.h), its
// hop-by-hop fields dropped, a chunked body de-chunked. Bounds: 100 concurrent streams, 64 KiB of
// fields per request, 256 KiB of request body per stream window (flow control is given back only
// as the bytes leave for JS), 64 KiB of response held per stream (its connection is read no
// further meanwhile), 128 connections into JS per session (more streams are refused). A stream
// gets its connection only after the read that carried its request head, so one reset in the same
// read (a reset flood) costs none. A stream reset while an answer of known length was coming
// leaves the connection reading the rest of it (up to 1 MiB) and then reusable; any other reset
// shuts its connection (the capsule's server sees the request end), which still counts against the
// 128 until JS closed its end; nghttp2's own reset rate limit ends a session that floods resets.
// The front ends a session with no open stream and no connection into JS for its idle time
// (quietMs).
#include "h2-gateway.h"

#include "http1.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <unordered_map>
#include <vector>

#if __has_include(<nghttp2/nghttp2.h>)
#include <nghttp2/nghttp2.h>
#define WRENN_HAVE_NGHTTP2 1
#endif

namespace wrenn {
namespace h2gw {

std::atomic<uint64_t> g_streams{0};

#ifndef WRENN_HAVE_NGHTTP2

bool available() { return false; }
struct Gateway::Impl {};
Gateway::Gateway(Host) {}
Gateway::~Gateway() = default;
bool Gateway::ok() const { return false; }
bool Gateway::recv(const uint8_t*, size_t) { return false; }
void Gateway::upstreamEvent(uint64_t, uint32_t) {}
void Gateway::work() {}
bool Gateway::output(std::string&, size_t) { return false; }
void Gateway::clientEof() {}
bool Gateway::done() const { return true; }
int64_t Gateway::quietMs(int64_t) { return 0; }
void Gateway::sweep(int64_t) {}
void Gateway::goaway() {}

#else

bool available() { return true; }

namespace {

constexpr size_t kMaxFieldBytes = 64 * 1024;
constexpr size_t kMaxFields = 256;
constexpr size_t kMaxUpstreams = 128;
constexpr size_t kMaxIdle = 32;
constexpr size_t kResHigh = 64 * 1024;
constexpr size_t kReqHigh = 256 * 1024;
constexpr size_t kDiscardMax = 1 << 20;
constexpr size_t kReadChunk = 64 * 1024;
constexpr int32_t kStreamWindow = 256 * 1024;
constexpr int32_t kSessionWindow = 1 << 20;

int64_t nowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

struct Stream;

// One plaintext HTTP/1.1 connection into JS.
struct Up {
  uint64_t uid = 0;
  int fd = -1;
  std::string authority;
  Stream* stream = nullptr;
  std::string out;
  size_t outOff = 0;
  std::string in;  // a partial response head
  enum St { Idle, Head, Body, Discard } st = Idle;
  http1::ResponseOut res;
  uint64_t left = 0;
  http1::ChunkScanner chunks;  // a chunked answer, its data alone going to the stream
  bool isHead = false;
  bool reqDone = false;  // the whole request is in out (maybe not yet sent)
  bool fresh = true;     // no request answered on it yet
  bool gotBytes = false; // any byte of the current answer arrived
  bool canRead = true, canWrite = true, paused = false;
  bool outArmed = false;  // epoll reports it writable (a send found it full)
  size_t discarded = 0;
};

struct Stream {
  int32_t id = 0;
  std::string method, path, authority, host, scheme, fields, cookies;
  bool hasLength = false, invalid = false;
  size_t bytes = 0, count = 0;
  Up* up = nullptr;
  bool dispatched = false, reqEnded = false, chunked = false, retried = false;
  bool queued = false;  // its head is complete, its connection not yet picked (see dispatchQueued)
  std::string head;  // the request head sent (a retry on a fresh connection resends it)
  std::string early; // request body that came while queued (already framed), sent after the head
  std::string body;  // response bytes for the client
  size_t bodyOff = 0;
  bool responded = false, resEnded = false, deferred = false;
  size_t owed = 0;   // request bytes received but not yet given back to the flow-control window
};

bool tokenChar(unsigned char c) {
  return c > 0x20 && c < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", c);
}
bool visible(const std::string& s) {
  for (unsigned char c : s)
    if (c <= 0x20 || c >= 0x7f) return false;
  return !s.empty();
}
std::string lower(const char* p, size_t n) {
  std::string s(p, n);
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

}  // namespace

struct Gateway::Impl {
  Host host;
  nghttp2_session* session = nullptr;
  std::unordered_map<int32_t, std::unique_ptr<Stream>> streams;
  std::unordered_map<uint64_t, std::unique_ptr<Up>> ups;
  std::vector<uint64_t> wake;  // connections to read again (their stream's buffer drained)
  std::vector<int32_t> queue;  // streams whose request is whole enough to go, in arrival order
  // Connections whose stream went with its request unanswered: our side is shut (so JS, and the
  // capsule's server behind it, see the request end); kept until JS closes its end, so that they
  // still count against kMaxUpstreams (closing at once let a reset flood open one per stream).
  struct Drain {
    int fd;
    int64_t until;
    size_t discarded;
  };
  std::unordered_map<uint64_t, Drain> draining;
  size_t active = 0;     // streams dispatched and not yet closed
  int64_t lastBusy = 0;  // when a stream or a connection into JS last existed
  bool eof = false, fatal = false;
  std::unique_ptr<char[]> scratch{new char[kReadChunk]};

  explicit Impl(Host h) : host(std::move(h)) {
    lastBusy = nowMs();
    nghttp2_session_callbacks* cb = nullptr;
    nghttp2_option* opt = nullptr;
    if (nghttp2_session_callbacks_new(&cb) != 0) return;
    if (nghttp2_option_new(&opt) != 0) {
      nghttp2_session_callbacks_del(cb);
      return;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, onBeginHeaders);
    nghttp2_session_callbacks_set_on_header_callback(cb, onHeader);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, onFrameRecv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, onDataChunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, onStreamClose);
    // Request bodies: the window opens again only as their bytes leave for JS (back-pressure).
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_reserved_remote_streams(opt, 0);
    int r = nghttp2_session_server_new2(&session, cb, this, opt);
    nghttp2_session_callbacks_del(cb);
    nghttp2_option_del(opt);
    if (r != 0) {
      session = nullptr;
      return;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kStreamWindow)},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<uint32_t>(kMaxFieldBytes)},
    };
    if (nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, iv, 3) != 0 ||
        nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0, kSessionWindow) != 0) {
      nghttp2_session_del(session);
      session = nullptr;
    }
  }

  ~Impl() {
    if (session) nghttp2_session_del(session);  // no callbacks from here
    session = nullptr;
    for (auto& [uid, u] : ups) host.close(uid, u->fd);
    for (auto& [uid, d] : draining) host.close(uid, d.fd);
  }

  static Impl* of(void* p) { return static_cast<Impl*>(p); }

  static int onBeginHeaders(nghttp2_session*, const nghttp2_frame* f, void* ud) {
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    Impl* g = of(ud);
    auto s = std::make_unique<Stream>();
    s->id = f->hd.stream_id;
    g->streams[s->id] = std::move(s);
    return 0;
  }

  Stream* stream(int32_t id) {
    auto it = streams.find(id);
    return it == streams.end() ? nullptr : it->second.get();
  }

  static int onHeader(nghttp2_session*, const nghttp2_frame* f, const uint8_t* name, size_t nlen, const uint8_t* value,
                      size_t vlen, uint8_t, void* ud) {
    Impl* g = of(ud);
    if (f->hd.type != NGHTTP2_HEADERS) return 0;
    Stream* s = g->stream(f->hd.stream_id);
    if (!s) return 0;
    // Field floods (an HPACK bomb decodes to many or large fields), trailers too: the stream is reset.
    s->bytes += nlen + vlen + 32;
    if (++s->count > kMaxFields || s->bytes > kMaxFieldBytes) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;  // trailers: not passed on
    const char* n = reinterpret_cast<const char*>(name);
    const char* v = reinterpret_cast<const char*>(value);
    std::string val(v, vlen);
    if (nlen && n[0] == ':') {
      std::string pn(n, nlen);
      if (pn == ":method") s->method = val;
      else if (pn == ":path") s->path = val;
      else if (pn == ":authority") s->authority = val;
      else if (pn == ":scheme") s->scheme = val;
      else s->invalid = true;  // :protocol (extended CONNECT) and the like
      return 0;
    }
    std::string ln(n, nlen);
    if (ln == "host") {
      s->host = val;
      return 0;
    }
    if (ln == "te") return 0;  // only "trailers" gets this far: meaningless on HTTP/1.1
    if (ln == "cookie") {
      if (!s->cookies.empty()) s->cookies += "; ";
      s->cookies += val;
      return 0;
    }
    if (ln == "content-length") s->hasLength = true;
    s->fields.append(ln).append(": ").append(val).append("\r\n");
    return 0;
  }

  static int onFrameRecv(nghttp2_session*, const nghttp2_frame* f, void* ud) {
    Impl* g = of(ud);
    Stream* s = g->stream(f->hd.stream_id);
    if (!s) return 0;
    bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
      if (end) s->reqEnded = true;
      g->dispatch(*s);
    } else if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) && end) {
      g->endRequest(*s);
    }
    return 0;
  }

  static int onDataChunk(nghttp2_session* session, uint8_t, int32_t id, const uint8_t* data, size_t len, void* ud) {
    Impl* g = of(ud);
    Stream* s = g->stream(id);
    if (s && s->queued) {
      // Its connection is picked once this read is done: the bytes wait, their window with them.
      s->early.append(frameBody(*s, data, len));
      s->owed += len;
      return 0;
    }
    if (!s || !s->up || s->up->stream != s || s->up->reqDone) {
      // Nobody takes it (answered already, or its connection went): the window opens at once.
      nghttp2_session_consume(session, id, len);
      return 0;
    }
    Up& u = *s->up;
    u.out.append(frameBody(*s, data, len));
    s->owed += len;
    g->flush(u);
    return 0;
  }

  static std::string frameBody(const Stream& s, const uint8_t* data, size_t len) {
    std::string out;
    if (s.chunked) {
      char hex[24];
      int k = snprintf(hex, sizeof hex, "%zx\r\n", len);
      out.reserve(len + static_cast<size_t>(k) + 2);
      out.append(hex, static_cast<size_t>(k));
      out.append(reinterpret_cast<const char*>(data), len);
      out.append("\r\n");
    } else {
      out.assign(reinterpret_cast<const char*>(data), len);
    }
    return out;
  }

  static int onStreamClose(nghttp2_session*, int32_t id, uint32_t, void* ud) {
    Impl* g = of(ud);
    auto it = g->streams.find(id);
    if (it == g->streams.end()) return 0;
    Stream& s = *it->second;
    if (s.dispatched) {
      g->active--;
      g->lastBusy = nowMs();
    }
    // Request bytes never given back (their connection went): the session's window gets them.
    if (s.owed) nghttp2_session_consume_connection(g->session, s.owed);
    if (Up* u = s.up) {
      s.up = nullptr;
      u->stream = nullptr;
      bool sent = u->reqDone && u->outOff >= u->out.size();
      if (u->st == Up::Body && sent && u->res.body == http1::ResponseOut::Length && u->left <= kDiscardMax) {
        // Reset while the answer was coming: read the rest of it, then the connection is reusable.
        // (Reset before any answer: the connection closes, so the capsule's server sees its
        // request end, as a gone HTTP/1.1 client's.)
        u->st = Up::Discard;
        u->discarded = 0;
      } else if (u->st != Up::Idle || !sent) {
        g->closeUp(*u, true);
      }
    }
    g->streams.erase(it);
    return 0;
  }

  void reset(Stream& s, uint32_t code) { nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, s.id, code); }

  void respondLocal(Stream& s, int status, const std::string& msg) {
    if (s.responded) return reset(s, NGHTTP2_INTERNAL_ERROR);
    s.body = "{\"message\":\"" + msg + "\",\"code\":" + std::to_string(status) + "}";
    s.bodyOff = 0;
    s.resEnded = true;
    std::string st = std::to_string(status), len = std::to_string(s.body.size());
    nghttp2_nv nv[] = {
        {(uint8_t*)":status", (uint8_t*)st.data(), 7, st.size(), NGHTTP2_NV_FLAG_NONE},
        {(uint8_t*)"content-type", (uint8_t*)"application/json", 12, 16, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t*)"content-length", (uint8_t*)len.data(), 14, len.size(), NGHTTP2_NV_FLAG_NONE},
    };
    submit(s, nv, 3, true);
  }

  void submit(Stream& s, const nghttp2_nv* nv, size_t n, bool body) {
    s.responded = true;
    nghttp2_data_provider dp{};
    dp.source.ptr = &s;
    dp.read_callback = readBody;
    if (nghttp2_submit_response(session, s.id, nv, n, body ? &dp : nullptr) != 0) reset(s, NGHTTP2_INTERNAL_ERROR);
  }

  static ssize_t readBody(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                          nghttp2_data_source* src, void* ud) {
    Impl* g = of(ud);
    Stream& s = *static_cast<Stream*>(src->ptr);
    size_t avail = s.body.size() - s.bodyOff;
    size_t k = std::min(length, avail);
    if (k) memcpy(buf, s.body.data() + s.bodyOff, k);
    s.bodyOff += k;
    if (s.bodyOff == s.body.size()) {
      s.body.clear();
      s.bodyOff = 0;
    } else if (s.bodyOff >= kReadChunk) {
      s.body.erase(0, s.bodyOff);
      s.bodyOff = 0;
    }
    if (s.up && s.up->paused && s.body.size() - s.bodyOff < kResHigh / 2) {
      s.up->paused = false;
      g->wake.push_back(s.up->uid);
    }
    if (s.resEnded && s.body.size() == s.bodyOff) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      return static_cast<ssize_t>(k);
    }
    if (!k) {
      s.deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    return static_cast<ssize_t>(k);
  }

  void moreBody(Stream& s) {
    if (s.deferred) {
      s.deferred = false;
      nghttp2_session_resume_data(session, s.id);
    }
  }

  void dispatch(Stream& s) {
    if (s.dispatched) return;
    s.dispatched = true;
    active++;
    lastBusy = nowMs();
    g_streams++;
    const std::string& name = s.authority.empty() ? s.host : s.authority;
    // nghttp2 checked the fields' characters; these go into a request line and Host as they are.
    bool okMethod = !s.method.empty();
    for (unsigned char c : s.method) okMethod = okMethod && tokenChar(c);
    if (s.invalid || !okMethod || s.method == "CONNECT" || !visible(s.path) || (s.path[0] != '/' && s.path != "*") ||
        !visible(name) || (!s.authority.empty() && !s.host.empty() && lower(s.authority.data(), s.authority.size()) != lower(s.host.data(), s.host.size())))
      return respondLocal(s, 400, "malformed HTTP/2 request (method, :path or :authority)");
    std::string h;
    h.reserve(128 + s.fields.size());
    h.append(s.method).append(" ").append(s.path).append(" HTTP/1.1\r\nhost: ").append(name).append("\r\n");
    h.append(s.fields);
    if (!s.cookies.empty()) h.append("cookie: ").append(s.cookies).append("\r\n");
    if (!s.hasLength) {
      if (!s.reqEnded) {
        h.append("transfer-encoding: chunked\r\n");
        s.chunked = true;
      } else if (s.method != "GET" && s.method != "HEAD" && s.method != "OPTIONS" && s.method != "DELETE") {
        h.append("content-length: 0\r\n");
      }
    }
    h.append("\r\n");
    s.head = std::move(h);
    // The connection is picked after the whole read (work()): a stream the same read resets (a
    // reset flood sends HEADERS and RST_STREAM together) never costs one.
    s.queued = true;
    queue.push_back(s.id);
  }

  // Streams queued by the last read get their connections into JS.
  void dispatchQueued() {
    if (queue.empty()) return;
    std::vector<int32_t> q;
    q.swap(queue);
    for (int32_t id : q) {
      Stream* s = stream(id);
      if (!s || !s->queued) continue;  // reset (closed) meanwhile
      s->queued = false;
      Up* u = pick(s->authority.empty() ? s->host : s->authority);
      if (!u) {
        // Given back: the queued body's window (nobody will take the bytes).
        if (s->owed) nghttp2_session_consume(session, s->id, s->owed);
        s->owed = 0;
        s->early.clear();
        if (ups.size() + draining.size() >= kMaxUpstreams) reset(*s, NGHTTP2_REFUSED_STREAM);
        else respondLocal(*s, 502, "the proxy could not open a connection");
        continue;
      }
      attach(*s, *u);
    }
  }

  void attach(Stream& s, Up& u) {
    u.stream = &s;
    s.up = &u;
    u.st = Up::Head;
    u.in.clear();
    u.gotBytes = false;
    u.isHead = s.method == "HEAD";
    u.reqDone = s.reqEnded;
    u.out.append(s.head);
    u.out.append(s.early);
    s.early.clear();
    flush(u);
  }

  Up* pick(const std::string& authority) {
    Up* idleOther = nullptr;
    for (auto& [_, u] : ups) {
      if (u->st != Up::Idle) continue;
      if (u->authority == authority) return u.get();
      idleOther = u.get();
    }
    if (ups.size() + draining.size() >= kMaxUpstreams) {
      if (!idleOther) return nullptr;
      closeUp(*idleOther);
    }
    uint64_t uid = 0;
    int fd = host.open(uid);
    if (fd < 0) return nullptr;
    auto u = std::make_unique<Up>();
    u->uid = uid;
    u->fd = fd;
    u->authority = authority;
    Up* p = u.get();
    ups[uid] = std::move(u);
    return p;
  }

  void endRequest(Stream& s) {
    if (s.queued) {
      if (!s.reqEnded && s.chunked) s.early.append("0\r\n\r\n");
      s.reqEnded = true;
      return;
    }
    s.reqEnded = true;
    if (!s.up || s.up->stream != &s || s.up->reqDone) return;
    if (s.chunked) s.up->out.append("0\r\n\r\n");
    s.up->reqDone = true;
    flush(*s.up);
  }

  // drain: a request is (or may be) under way on it: shut our side and keep the descriptor until
  // JS closes its end (see draining); else it is closed at once (JS's side ended, or it is idle).
  void closeUp(Up& u, bool drain = false) {
    if (u.stream) u.stream->up = nullptr;
    uint64_t uid = u.uid;
    int fd = u.fd;
    lastBusy = nowMs();
    ups.erase(uid);  // u is gone
    if (!drain) return host.close(uid, fd);
    if (shutdown(fd, SHUT_WR) < 0) return host.close(uid, fd);
    host.wantWrite(uid, fd, false);
    draining[uid] = Drain{fd, lastBusy + host.drainMs, 0};
    drainRead(uid);
  }

  // Reads (and drops) what JS still sends on a draining connection; closes it at its end.
  void drainRead(uint64_t uid) {
    auto it = draining.find(uid);
    if (it == draining.end()) return;
    Drain& d = it->second;
    char buf[4096];  // not scratch: a caller may still be reading from it
    for (;;) {
      ssize_t n = ::recv(d.fd, buf, sizeof buf, 0);
      if (n > 0) {
        d.discarded += static_cast<size_t>(n);
        if (d.discarded <= kDiscardMax) continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return;
      }
      host.close(uid, d.fd);
      draining.erase(it);
      return;
    }
  }

  // Writes what waits for JS; gives the flow-control window back for what left.
  void flush(Up& u) {
    while (u.canWrite && u.outOff < u.out.size()) {
      ssize_t n = send(u.fd, u.out.data() + u.outOff, u.out.size() - u.outOff, MSG_NOSIGNAL);
      if (n > 0) u.outOff += static_cast<size_t>(n);
      else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        u.canWrite = false;
        if (!u.outArmed) {
          u.outArmed = true;
          host.wantWrite(u.uid, u.fd, true);
        }
      } else return ended(u, true);
    }
    if (u.outOff >= u.out.size()) {
      u.out.clear();
      u.outOff = 0;
      if (u.outArmed) {
        u.outArmed = false;
        host.wantWrite(u.uid, u.fd, false);
      }
    }
    Stream* s = u.stream;
    if (s && s->owed && u.out.size() - u.outOff < kReqHigh) {
      nghttp2_session_consume(session, s->id, s->owed);
      s->owed = 0;
    }
    if (u.st == Up::Idle && u.out.empty() && !u.stream) return;
    maybeIdle(u);
  }

  // The answer and the request are both whole: the connection takes the next request.
  void maybeIdle(Up& u) {
    if (u.st != Up::Idle || !u.stream) return;
    Stream* s = u.stream;
    if (!u.reqDone || !u.out.empty()) return;
    s->up = nullptr;
    u.stream = nullptr;
    idleOrClose(u);
  }

  void idleOrClose(Up& u) {
    u.st = Up::Idle;
    u.fresh = false;
    size_t idle = 0;
    for (auto& [_, o] : ups) idle += o->st == Up::Idle && !o->stream;
    if (idle > kMaxIdle || u.res.close) closeUp(u);
  }

  void service(Up& u) {
    const uint64_t uid = u.uid;
    flush(u);
    if (!ups.count(uid)) return;
    while (u.canRead && !u.paused) {
      // An answer's bytes wait for the client's window in its stream's buffer: never more than
      // kResHigh of them (a client that opens no window holds 64 KiB per stream, 6.4 MiB a session).
      size_t want = kReadChunk;
      if (u.st == Up::Body && u.stream) {
        size_t held = u.stream->body.size() - u.stream->bodyOff;
        if (held >= kResHigh) {
          u.paused = true;
          break;
        }
        want = std::min(want, kResHigh - held);
      }
      ssize_t n = ::recv(u.fd, scratch.get(), want, 0);
      if (n > 0) {
        if (!bytes(u, scratch.get(), static_cast<size_t>(n))) return;  // u is gone
        if (!ups.count(uid)) return;
      } else if (n == 0) {
        return ended(u, false);
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        u.canRead = false;
      } else {
        return ended(u, true);
      }
    }
  }

  // The response bytes p[0, n); false: u was closed.
  bool bytes(Up& u, const char* p, size_t n) {
    while (n > 0) {
      if (u.st == Up::Idle) {
        closeUp(u);  // bytes nobody asked for
        return false;
      }
      u.gotBytes = true;
      if (u.st == Up::Head) {
        size_t from = u.in.size() >= 3 ? u.in.size() - 3 : 0;
        u.in.append(p, n);
        n = 0;
        size_t e = http1::headEnd(u.in, from);
        if (e == std::string::npos) {
          if (u.in.size() > http1::kMaxHead) return fail(u, "the capsule's server sent an oversized response head");
          return true;
        }
        http1::ResponseOut r;
        if (!http1::readResponse(u.in.data(), e, u.isHead, nullptr, r) || r.status == 101)
          return fail(u, "the capsule's server sent a malformed response head");
        std::string rest = u.in.substr(e);
        std::string head = u.in.substr(0, e);
        u.in.clear();
        if (r.status >= 100 && r.status < 200) {
          // Interim answers (100 Continue, 103) are not passed on.
          if (!rest.empty() && !bytes(u, rest.data(), rest.size())) return false;
          return true;
        }
        u.res = r;
        u.st = Up::Body;
        if (r.body == http1::ResponseOut::Length) u.left = r.length;
        u.chunks = http1::ChunkScanner();
        bool hasBody = r.body != http1::ResponseOut::None;
        if (u.stream) respond(*u.stream, head, hasBody);
        if (!hasBody) {
          if (!rest.empty()) {
            closeUp(u);  // bytes after a bodiless answer: not HTTP/1.1 as we speak it
            return false;
          }
          return complete(u);
        }
        if (!rest.empty()) return bytes(u, rest.data(), rest.size());
        return true;
      }
      // Body or Discard.
      std::string* sink = u.st == Up::Body && u.stream ? &u.stream->body : nullptr;
      size_t before = sink ? sink->size() : 0;
      size_t took = 0;
      bool whole = false;
      if (u.res.body == http1::ResponseOut::Length) {
        took = static_cast<size_t>(std::min<uint64_t>(u.left, n));
        if (sink) sink->append(p, took);
        u.left -= took;
        whole = u.left == 0;
      } else if (u.res.body == http1::ResponseOut::Chunked) {
        long k = u.chunks.scan(p, n, sink);
        if (k < 0) return fail(u, "the capsule's server sent a malformed chunked body");
        took = static_cast<size_t>(k);
        whole = u.chunks.done();
      } else {
        took = n;
        if (sink) sink->append(p, n);
      }
      p += took;
      n -= took;
      if (u.st == Up::Discard) {
        u.discarded += took;
        if (u.discarded > kDiscardMax) {
          closeUp(u, true);
          return false;
        }
      }
      if (sink && sink->size() > before) {
        moreBody(*u.stream);
        if (sink->size() - u.stream->bodyOff >= kResHigh) u.paused = true;
      }
      if (whole) {
        if (!complete(u)) return false;
        if (n > 0) {
          closeUp(u);  // pipelined bytes nobody asked for
          return false;
        }
      }
    }
    return true;
  }

  // The answer on u is whole; false: u was closed.
  bool complete(Up& u) {
    const uint64_t uid = u.uid;
    if (Stream* s = u.stream) {
      s->resEnded = true;
      moreBody(*s);
      if (u.res.close) {
        closeUp(u);
        return false;
      }
      u.st = Up::Idle;
      maybeIdle(u);
      if (u.st == Up::Idle && u.stream) {
        // The request is still being sent: the connection stays with the stream until it closes;
        // any byte now is one nobody asked for.
      }
    } else {
      idleOrClose(u);
    }
    return ups.count(uid) > 0;
  }

  bool fail(Up& u, const char* msg) {
    if (Stream* s = u.stream) respondLocal(*s, 502, msg);
    closeUp(u, true);
    return false;
  }

  void respond(Stream& s, const std::string& head, bool hasBody) {
    if (s.responded) return;
    // Field lines after the status line; hop-by-hop ones (and those Connection names) dropped.
    std::vector<std::pair<std::string, std::string>> fs;
    std::vector<std::string> named;
    size_t i = head.find("\r\n") + 2;
    std::string status = head.substr(9, 3);
    while (i + 2 <= head.size()) {
      size_t e = head.find("\r\n", i);
      if (e == std::string::npos || e == i) break;
      size_t c = head.find(':', i);
      if (c == std::string::npos || c > e) {
        i = e + 2;
        continue;
      }
      std::string name = lower(head.data() + i, c - i);
      size_t vs = c + 1, ve = e;
      while (vs < ve && (head[vs] == ' ' || head[vs] == '\t')) vs++;
      while (ve > vs && (head[ve - 1] == ' ' || head[ve - 1] == '\t')) ve--;
      std::string value = head.substr(vs, ve - vs);
      i = e + 2;
      if (name == "connection") {
        size_t a = 0;
        while (a <= value.size()) {
          size_t b = value.find(',', a);
          if (b == std::string::npos) b = value.size();
          std::string t = lower(value.data() + a, b - a);
          size_t x = t.find_first_not_of(" \t"), y = t.find_last_not_of(" \t");
          if (x != std::string::npos) named.push_back(t.substr(x, y - x + 1));
          a = b + 1;
        }
        continue;
      }
      if (name == "keep-alive" || name == "proxy-connection" || name == "transfer-encoding" || name == "upgrade" ||
          name == "te" || name == "trailer")
        continue;
      fs.emplace_back(std::move(name), std::move(value));
    }
    std::vector<nghttp2_nv> nv;
    nv.reserve(fs.size() + 1);
    nv.push_back({(uint8_t*)":status", (uint8_t*)status.data(), 7, 3, NGHTTP2_NV_FLAG_NONE});
    for (auto& [n, v] : fs) {
      bool drop = false;
      for (auto& x : named) drop = drop || x == n;
      if (drop) continue;
      nv.push_back({(uint8_t*)n.data(), (uint8_t*)v.data(), n.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
    }
    submit(s, nv.data(), nv.size(), hasBody);
  }

  // The connection ended (EOF, or an error).
  void ended(Up& u, bool error) {
    Stream* s = u.stream;
    if (!error && u.st == Up::Body && u.res.body == http1::ResponseOut::Close) {
      if (s) {
        s->resEnded = true;
        moreBody(*s);
      }
      closeUp(u);
      return;
    }
    if (s && u.st == Up::Head && !u.gotBytes && !u.fresh && !s->retried && u.reqDone && !s->chunked && !s->hasLength) {
      // A kept-alive connection JS closed just as this request went out: once more on a new one.
      s->retried = true;
      closeUp(u);
      Up* n = pick(s->authority.empty() ? s->host : s->authority);
      if (!n) return respondLocal(*s, 502, "the proxy could not open a connection");
      return attach(*s, *n);
    }
    if (s && u.st != Up::Idle) {
      if (!s->responded) respondLocal(*s, 502, "the connection to the capsule ended before its answer");
      else if (!s->resEnded) reset(*s, NGHTTP2_INTERNAL_ERROR);
    }
    closeUp(u);
  }

  void work() {
    dispatchQueued();
    while (!wake.empty()) {
      std::vector<uint64_t> w;
      w.swap(wake);
      for (uint64_t uid : w) {
        auto it = ups.find(uid);
        if (it != ups.end()) service(*it->second);
      }
    }
  }
};

Gateway::Gateway(Host host) : impl_(new Impl(std::move(host))) {}
Gateway::~Gateway() = default;
bool Gateway::ok() const { return impl_->session != nullptr; }

bool Gateway::recv(const uint8_t* p, size_t n) {
  if (!impl_->session || impl_->fatal) return false;
  ssize_t r = nghttp2_session_mem_recv(impl_->session, p, n);
  if (r < 0) {
    impl_->fatal = true;
    return false;
  }
  // work() follows the whole read (the front calls it): queued streams get connections then.
  return true;
}

void Gateway::upstreamEvent(uint64_t uid, uint32_t events) {
  if (impl_->draining.count(uid)) return impl_->drainRead(uid);
  auto it = impl_->ups.find(uid);
  if (it == impl_->ups.end()) return;
  Up& u = *it->second;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) u.canRead = true;
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) u.canWrite = true;
  impl_->service(u);
  impl_->work();
}

void Gateway::work() { impl_->work(); }

bool Gateway::output(std::string& out, size_t max) {
  if (!impl_->session) return false;
  while (out.size() < max) {
    const uint8_t* d = nullptr;
    ssize_t n = nghttp2_session_mem_send(impl_->session, &d);
    if (n < 0) {
      impl_->fatal = true;
      return false;
    }
    if (n == 0) break;
    out.append(reinterpret_cast<const char*>(d), static_cast<size_t>(n));
  }
  return true;
}

void Gateway::clientEof() { impl_->eof = true; }

int64_t Gateway::quietMs(int64_t now) {
  Impl& g = *impl_;
  if (g.active > 0 || !g.ups.empty()) {
    g.lastBusy = now;
    return 0;
  }
  return now > g.lastBusy ? now - g.lastBusy : 0;
}

void Gateway::sweep(int64_t now) {
  Impl& g = *impl_;
  for (auto it = g.draining.begin(); it != g.draining.end();) {
    if (now >= it->second.until) {
      // JS never closed its end: ours goes anyway (it can no longer hold a request of ours).
      g.host.close(it->first, it->second.fd);
      it = g.draining.erase(it);
    } else ++it;
  }
}

void Gateway::goaway() {
  if (impl_->session) nghttp2_session_terminate_session(impl_->session, NGHTTP2_NO_ERROR);
}

bool Gateway::done() const {
  if (!impl_->session || impl_->eof) return true;
  return !nghttp2_session_want_read(impl_->session) && !nghttp2_session_want_write(impl_->session);
}

#endif

}  // namespace h2gw
}  // namespace wrenn
