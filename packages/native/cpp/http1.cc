#include "http1.h"

#include <string.h>

#include <vector>

namespace wrenn {
namespace http1 {
namespace {

struct Span {
  const char* p = nullptr;
  size_t n = 0;
  std::string str() const { return std::string(p, n); }
  bool is(const std::string& s) const { return n == s.size() && memcmp(p, s.data(), n) == 0; }
};

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

bool iequals(Span s, const char* lit) {
  size_t n = strlen(lit);
  if (s.n != n) return false;
  for (size_t i = 0; i < n; i++)
    if (lower(s.p[i]) != lit[i]) return false;
  return true;
}

Span trim(Span s) {
  while (s.n > 0 && (s.p[0] == ' ' || s.p[0] == '\t')) s.p++, s.n--;
  while (s.n > 0 && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t')) s.n--;
  return s;
}

// Bytes JS's String.trim() would treat differently from ours (other whitespace, non-ASCII).
bool plainValue(Span s) {
  for (size_t i = 0; i < s.n; i++) {
    unsigned char c = static_cast<unsigned char>(s.p[i]);
    if ((c < 0x20 && c != '\t') || c >= 0x7f) return false;
  }
  return true;
}

bool isTchar(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

bool digits(Span s, uint64_t& v) {
  if (s.n == 0 || s.n > 15) return false;
  v = 0;
  for (size_t i = 0; i < s.n; i++) {
    if (s.p[i] < '0' || s.p[i] > '9') return false;
    v = v * 10 + static_cast<uint64_t>(s.p[i] - '0');
  }
  return true;
}

// Whether a comma-separated value holds a token (case-insensitive).
bool hasToken(Span v, const char* token) {
  size_t i = 0;
  while (i <= v.n) {
    size_t j = i;
    while (j < v.n && v.p[j] != ',') j++;
    if (iequals(trim(Span{v.p + i, j - i}), token)) return true;
    i = j + 1;
  }
  return false;
}

struct Field {
  Span name, value;  // value trimmed
  size_t from, to;   // the line's span in the head
};

// Splits the head's field lines; false on obsolete folding, a missing colon or space before it.
bool fields(const char* p, size_t len, size_t fieldsAt, std::vector<Field>& out) {
  size_t ls = fieldsAt + 2;
  while (fieldsAt < len && ls < len + 2) {
    const char* le = static_cast<const char*>(memmem(p + ls, len - ls, "\r\n", 2));
    size_t e = le ? static_cast<size_t>(le - p) : len;
    const char* colon = static_cast<const char*>(memchr(p + ls, ':', e - ls));
    if (!colon || colon == p + ls) return false;
    size_t c = static_cast<size_t>(colon - p);
    char first = p[ls], before = p[c - 1];
    if (first == ' ' || first == '\t' || before == ' ' || before == '\t') return false;
    out.push_back(Field{Span{p + ls, c - ls}, trim(Span{p + c + 1, e - c - 1}), ls, e});
    ls = e + 2;
  }
  return true;
}

}  // namespace

size_t headEnd(const std::string& buf, size_t from) {
  if (buf.size() < from + 4) return std::string::npos;
  const void* at = memmem(buf.data() + from, buf.size() - from, "\r\n\r\n", 4);
  return at ? static_cast<size_t>(static_cast<const char*>(at) - buf.data()) + 4 : std::string::npos;
}

bool rewriteRequest(const char* p, size_t n, const Route& r, RequestOut& out) {
  size_t len = n - 4;
  const char* crlf = static_cast<const char*>(memmem(p, len, "\r\n", 2));
  size_t fieldsAt = crlf ? static_cast<size_t>(crlf - p) : len;
  const char* sp1 = static_cast<const char*>(memchr(p, ' ', fieldsAt));
  if (!sp1 || sp1 == p) return false;
  size_t a = static_cast<size_t>(sp1 - p);
  const char* sp2 = static_cast<const char*>(memchr(p + a + 1, ' ', fieldsAt - a - 1));
  if (!sp2) return false;
  size_t b = static_cast<size_t>(sp2 - p);
  Span method{p, a}, target{p + a + 1, b - a - 1}, version{p + b + 1, fieldsAt - b - 1};
  // HTTP/1.0 (its own keep-alive rules) and CONNECT stay with JS.
  if (!version.is("HTTP/1.1") || target.n == 0 || method.is("CONNECT")) return false;
  for (size_t i = 0; i < method.n; i++)
    if (!isTchar(method.p[i])) return false;
  for (size_t i = 0; i < target.n; i++) {
    unsigned char c = static_cast<unsigned char>(target.p[i]);
    if (c <= 0x20 || c >= 0x7f) return false;
  }

  std::vector<Field> fs;
  if (!fields(p, len, fieldsAt, fs)) return false;
  int hosts = 0, ids = 0, ports = 0, lengths = 0, codings = 0;
  Span host, id, port, cl, te;
  std::string xff;
  std::vector<const Field*> dropped;
  for (const Field& f : fs) {
    char c = lower(f.name.p[0]);
    if (c != 'h' && c != 'e' && c != 'c' && c != 't' && c != 'u' && c != 'x' && c != 'p') continue;
    bool read = true;
    if (iequals(f.name, "host")) {
      if (hosts++ == 0) host = f.value;
    } else if (iequals(f.name, "e2b-sandbox-id")) ids++, id = f.value;
    else if (iequals(f.name, "e2b-sandbox-port")) ports++, port = f.value;
    else if (iequals(f.name, "content-length")) lengths++, cl = f.value;
    else if (iequals(f.name, "transfer-encoding")) codings++, te = f.value;
    else if (iequals(f.name, "upgrade")) return false;  // upgrades become tunnels in JS
    else if (r.transparent)
      read = false;  // egress: the client's own forwarding and proxy fields are its business
    else if (iequals(f.name, "x-forwarded-for")) {
      if (f.value.n == 0) return false;
      xff += (xff.empty() ? "" : ", ") + f.value.str();
      dropped.push_back(&f);
    } else if (iequals(f.name, "x-forwarded-host") || iequals(f.name, "proxy-authorization") || iequals(f.name, "proxy-connection"))
      dropped.push_back(&f);
    else read = false;
    if (read && !plainValue(f.value)) return false;
  }

  // Same route as the connection's first request, decided the way routeOf() decides.
  std::string newTarget;
  if (r.kind == Route::Header) {
    if (ids != 1 || ports != 1 || !id.is(r.sandboxId) || !port.is(r.sandboxPort)) return false;
    newTarget.assign(target.p, target.n);
  } else {
    if (ids != 0 || ports != 0) return false;
    // routeOf() reads the first Host field.
    if (r.hasHost ? (hosts == 0 || !host.is(r.host)) : hosts != 0) return false;
    if (r.kind == Route::Host) {
      newTarget.assign(target.p, target.n);
    } else {
      const char* q = static_cast<const char*>(memchr(target.p, '?', target.n));
      size_t pathLen = q ? static_cast<size_t>(q - target.p) : target.n;
      if (pathLen < r.prefix.size() || memcmp(target.p, r.prefix.data(), r.prefix.size()) != 0) return false;
      if (pathLen > r.prefix.size() && target.p[r.prefix.size()] != '/') return false;
      // "/proxy/<id>/<P>" without a slash: the server's root.
      if (pathLen == r.prefix.size()) newTarget = "/";
      newTarget.append(target.p + r.prefix.size(), target.n - r.prefix.size());
    }
  }

  if (codings > 0) {
    if (lengths > 0 || codings > 1 || !iequals(te, "chunked")) return false;
    out.body = RequestOut::Chunked;
  } else if (lengths > 0) {
    uint64_t v;
    if (lengths > 1 || !digits(cl, v)) return false;
    out.body = v > 0 ? RequestOut::Length : RequestOut::None;
    out.length = v;
  }
  out.isHead = method.is("HEAD");

  std::string& h = out.head;
  h.reserve(n + 96);
  h.append(p, a + 1).append(newTarget).append(p + b, fieldsAt - b);
  size_t at = fieldsAt;
  for (const Field* f : dropped) {
    h.append(p + at, f->from - 2 - at);
    at = f->to;
  }
  h.append(p + at, len - at);
  if (!r.transparent && !r.remote.empty()) h.append("\r\nx-forwarded-for: ").append(xff).append(xff.empty() ? "" : ", ").append(r.remote);
  if (!r.transparent && hosts > 0 && host.n > 0) h.append("\r\nx-forwarded-host: ").append(host.p, host.n);
  h.append("\r\n\r\n");
  return true;
}

bool readResponse(const char* p, size_t n, bool isHead, const Route* route, ResponseOut& out) {
  size_t len = n - 4;
  const char* crlf = static_cast<const char*>(memmem(p, len, "\r\n", 2));
  size_t fieldsAt = crlf ? static_cast<size_t>(crlf - p) : len;
  const char* sp1 = static_cast<const char*>(memchr(p, ' ', fieldsAt));
  if (!sp1 || sp1 == p) return false;
  size_t a = static_cast<size_t>(sp1 - p);
  Span version{p, a};
  bool http10 = version.is("HTTP/1.0");
  if (!http10 && !version.is("HTTP/1.1")) return false;
  if (fieldsAt < a + 4) return false;
  const char* s = p + a + 1;
  if (!(s[0] >= '1' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9') || (fieldsAt > a + 4 && s[3] != ' ')) return false;
  out.status = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');

  std::vector<Field> fs;
  if (!fields(p, len, fieldsAt, fs)) return false;
  bool chunked = false, codings = false, close = false;
  std::vector<Span> lengths;
  const Field* location = nullptr;
  for (const Field& f : fs) {
    if (iequals(f.name, "transfer-encoding")) {
      codings = true;
      if (hasToken(f.value, "chunked")) chunked = true;
    } else if (iequals(f.name, "content-length")) {
      lengths.push_back(f.value);
    } else if (iequals(f.name, "connection")) {
      if (hasToken(f.value, "close")) close = true;
    } else if (iequals(f.name, "location") && !location) {
      location = &f;
    }
  }
  out.close = close || http10;

  int st = out.status;
  if (isHead || st == 204 || st == 304 || (st >= 100 && st < 200)) {
    out.body = ResponseOut::None;
  } else if (codings) {
    out.body = chunked ? ResponseOut::Chunked : ResponseOut::Close;
  } else if (!lengths.empty()) {
    // Repeated or listed lengths must all agree (as in http-scan.ts).
    bool have = false;
    uint64_t v = 0;
    for (Span l : lengths) {
      size_t i = 0;
      while (i <= l.n) {
        size_t j = i;
        while (j < l.n && l.p[j] != ',') j++;
        uint64_t x;
        if (!digits(trim(Span{l.p + i, j - i}), x) || (have && x != v)) return false;
        have = true;
        v = x;
        i = j + 1;
      }
    }
    out.body = v > 0 ? ResponseOut::Length : ResponseOut::None;
    out.length = v;
  } else {
    out.body = ResponseOut::Close;
  }

  if (route && location && plainValue(location->value)) {
    out.head.reserve(n + route->prefix.size());
    out.head.append(p, location->from).append("location: ").append(rewriteLocation(location->value.str(), *route));
    out.head.append(p + location->to, len - location->to).append("\r\n\r\n");
  }
  return true;
}

std::string rewriteLocation(const std::string& v, const Route& r) {
  if (r.prefix.empty()) return v;
  if (!v.empty() && v[0] == '/' && (v.size() < 2 || v[1] != '/')) return r.prefix + v;
  // Absolute: http(s)://<the capsule's server>[:port]<rest> keeps the prefix; anything else stays.
  size_t colon = v.find(':');
  if (colon == std::string::npos) return v;
  std::string scheme;
  for (size_t i = 0; i < colon; i++) scheme += lower(v[i]);
  if ((scheme != "http" && scheme != "https") || v.compare(colon, 3, "://") != 0) return v;
  size_t hs = colon + 3;
  size_t he = v.find_first_of("/?#", hs);
  if (he == std::string::npos) he = v.size();
  std::string authority = v.substr(hs, he - hs);
  if (authority.find_first_of("@[\\") != std::string::npos) return v;
  std::string host = authority;
  int port = scheme == "http" ? 80 : 443;
  size_t pc = authority.rfind(':');
  if (pc != std::string::npos) {
    host = authority.substr(0, pc);
    std::string ps = authority.substr(pc + 1);
    if (!ps.empty()) {
      if (ps.size() > 5 || ps.find_first_not_of("0123456789") != std::string::npos) return v;
      port = std::stoi(ps);
      if (port > 65535) return v;
    }
  }
  for (char& c : host) c = lower(c);
  bool local = host == "localhost" || host == "127.0.0.1" || host == "0.0.0.0" || host == r.targetHost;
  bool defaultPort = port == (scheme == "http" ? 80 : 443);
  if (!local || !(defaultPort || port == r.targetPort)) return v;
  std::string rest = v.substr(he);
  return r.prefix + (rest.empty() || rest[0] != '/' ? "/" + rest : rest);
}

long Body::take(const char* p, size_t n) {
  if (chunked_) return chunks_.scan(p, n);
  uint64_t k = left_ < n ? left_ : n;
  left_ -= k;
  return static_cast<long>(k);
}

long ChunkScanner::scan(const char* p, size_t n, std::string* data) {
  size_t i = 0;
  while (i < n && state_ != Done) {
    if (state_ == Data) {
      uint64_t k = size_ < n - i ? size_ : n - i;
      if (data) data->append(p + i, static_cast<size_t>(k));
      i += k;
      size_ -= k;
      if (size_ == 0) state_ = DataCr;
      continue;
    }
    char ch = p[i++];
    switch (state_) {
      case Size: {
        int d = (ch >= '0' && ch <= '9') ? ch - '0' : (ch >= 'a' && ch <= 'f') ? ch - 'a' + 10 : (ch >= 'A' && ch <= 'F') ? ch - 'A' + 10 : -1;
        if (d >= 0) {
          if (++digits_ > 12) return -1;
          size_ = size_ * 16 + static_cast<uint64_t>(d);
        } else if (digits_ > 0 && (ch == ';' || ch == ' ' || ch == '\t')) {
          state_ = Ext;
        } else if (digits_ > 0 && ch == '\r') {
          state_ = SizeLf;
        } else {
          return -1;
        }
        break;
      }
      case Ext:
        if (ch == '\r') state_ = SizeLf;
        break;
      case SizeLf:
        if (ch != '\n') return -1;
        digits_ = 0;
        state_ = size_ == 0 ? TrailerStart : Data;
        break;
      case DataCr:
        if (ch != '\r') return -1;
        state_ = DataLf;
        break;
      case DataLf:
        if (ch != '\n') return -1;
        state_ = Size;
        break;
      case TrailerStart:
        state_ = ch == '\r' ? FinalLf : Trailer;
        break;
      case Trailer:
        if (ch == '\r') state_ = TrailerLf;
        break;
      case TrailerLf:
        if (ch != '\n') return -1;
        state_ = TrailerStart;
        break;
      case FinalLf:
        if (ch != '\n') return -1;
        state_ = Done;
        break;
      default:
        break;
    }
  }
  return static_cast<long>(i);
}

}  // namespace http1
}  // namespace wrenn
