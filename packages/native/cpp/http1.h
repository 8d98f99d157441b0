// Just enough HTTP/1.1 for the relay's HTTP mode (the sandbox proxy's per-request work done on the
// relay thread): request heads checked against the connection's route and rewritten (path prefix
// off, X-Forwarded-* on), response heads read for framing and, for path routing, their Location
// rewritten to keep the prefix; chunked bodies walked. The rules follow the control plane's
// proxy/http-scan.ts and pipe.ts. Anything this side does not take on itself (another route, an
// upgrade, unusual framing, HTTP/1.0) is left for JS, which stays the full implementation.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include <string>

namespace wrenn {
namespace http1 {

constexpr size_t kMaxHead = 16 * 1024;

/** What every request on a connection must match to stay on the relay, and how it is rewritten. */
struct Route {
  enum Kind { Path, Host, Header } kind = Path;
  /** Path routing: "/proxy/<id>/<P>", taken off each target and kept on redirects. */
  std::string prefix;
  /** The Host field of the connection's first request (hasHost false: it had none). */
  bool hasHost = false;
  std::string host;
  /** Header routing: the E2b-Sandbox-Id and E2b-Sandbox-Port values. */
  std::string sandboxId, sandboxPort;
  /** The client's address, appended to X-Forwarded-For (empty: none). */
  std::string remote;
  /** Where the capsule's server is (Location values naming it are rewritten under the prefix). */
  std::string targetHost;
  int targetPort = 0;
  /** Egress (the agent's egress proxy): heads go out as the client wrote them, nothing added or dropped. */
  bool transparent = false;
};

/** Where a message head ends: index just past CRLFCRLF at or after from, or npos. */
size_t headEnd(const std::string& buf, size_t from);

struct RequestOut {
  std::string head;      // the rewritten head, CRLFCRLF included
  bool isHead = false;   // method HEAD: its response has no body
  enum Body { None, Length, Chunked } body = None;
  uint64_t length = 0;
};

/** Rewrites the request head p[0, n) (n includes CRLFCRLF); false when JS must take it. */
bool rewriteRequest(const char* p, size_t n, const Route& r, RequestOut& out);

struct ResponseOut {
  std::string head;  // empty: forward the head as received
  int status = 0;
  enum Body { None, Length, Chunked, Close } body = None;
  uint64_t length = 0;
  /** Connection: close or HTTP/1.0: the client's connection ends after this response. */
  bool close = false;
};

/**
 * Reads the response head p[0, n) to a request (isHead: its method was HEAD); rewrites Location
 * when route is given (path routing). False when it is malformed.
 */
bool readResponse(const char* p, size_t n, bool isHead, const Route* route, ResponseOut& out);

/** A redirect target kept under the prefix (root-relative, or absolute naming the capsule's server). */
std::string rewriteLocation(const std::string& v, const Route& r);

/**
 * Walks a chunked body (sizes, extensions, trailers) across any split of the bytes: the relay
 * follows a body with it, the h2 gateway de-chunks an answer with it (one rule for both hops).
 */
class ChunkScanner {
 public:
  /**
   * How many bytes of p[0, n) belong to the body (stops right after its end); -1 when malformed.
   * With `data`, the chunks' data bytes (no sizes, extensions or trailers) are appended to it.
   */
  long scan(const char* p, size_t n, std::string* data = nullptr);
  bool done() const { return state_ == Done; }

 private:
  enum State { Size, Ext, SizeLf, Data, DataCr, DataLf, TrailerStart, Trailer, TrailerLf, FinalLf, Done };
  State state_ = Size;
  uint64_t size_ = 0;
  int digits_ = 0;
};

/** Follows one message body of known framing (a length, or chunked) across any split of the bytes. */
class Body {
 public:
  static Body ofLength(uint64_t n) {
    Body b;
    b.left_ = n;
    return b;
  }
  static Body ofChunks() {
    Body b;
    b.chunked_ = true;
    return b;
  }
  /** How many bytes of p[0, n) belong to the body (stops right after its end); -1 when malformed. */
  long take(const char* p, size_t n);
  bool done() const { return chunked_ ? chunks_.done() : left_ == 0; }

 private:
  bool chunked_ = false;
  uint64_t left_ = 0;
  ChunkScanner chunks_;
};

}  // namespace http1
}  // namespace wrenn
