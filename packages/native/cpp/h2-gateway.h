// HTTP/2 terminated in the TLS front's thread (h2-gateway.cc): one Gateway per h2 connection turns
// each stream into an HTTP/1.1 request on a keep-alive plaintext connection into JS (the same kind
// of socketpair the front hands over for an HTTP/1.1 client), one connection per :authority and
// request at a time. Why: Node's h2 session plus an undici request per stream cost the event loop
// ~120 µs per request (bench/proxy-tls at 0.42 of direct); as HTTP/1.1 connections the streams
// take the sandbox proxy's piped path, whose keep-alive connections go to the native relay, so JS
// sees a connection once and no request after. Routing, tokens and errors stay JS's (unchanged).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

namespace wrenn {
namespace h2gw {

/** What the TLS front provides to a gateway. */
struct Host {
  /** Opens a plaintext connection into JS; returns this thread's end (registered in its epoll set under uid), or -1. */
  std::function<int(uint64_t& uid)> open;
  /** Closes this thread's end of connection uid and forgets it. */
  std::function<void(uint64_t uid, int fd)> close;
  /**
   * Whether epoll should report the connection writable (only while a send found it full: a Unix
   * socket reports write space each time its peer reads, a wake-up per request for nothing).
   */
  std::function<void(uint64_t uid, int fd, bool out)> wantWrite;
  /** How long a connection whose request was abandoned waits for JS to close its end. */
  int64_t drainMs = 10000;
};

/** Whether the addon was built with nghttp2's headers (the gateway exists). */
bool available();

/** Streams carried since the start (stats). */
extern std::atomic<uint64_t> g_streams;

class Gateway {
 public:
  explicit Gateway(Host host);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  /** False: the session could not be set up. */
  bool ok() const;
  /** Decrypted bytes from the client; false: the connection is to be dropped (not HTTP/2). */
  bool recv(const uint8_t* p, size_t n);
  /** epoll said something about connection uid. */
  void upstreamEvent(uint64_t uid, uint32_t events);
  /** Moves what waits on the connections into JS. */
  void work();
  /** Appends frames for the client (up to about max bytes); false: a fatal session error. */
  bool output(std::string& out, size_t max);
  /** The client's side ended (EOF or close_notify). */
  void clientEof();
  /** Nothing more to read or write: the connection can end once its output is out. */
  bool done() const;
  /**
   * How long the session has had no open stream and no connection into JS (0: it has some). The
   * connections into JS live as long as JS keeps them (its keep-alive and head timeouts), so a
   * session outlives its last request by exactly what an HTTP/1.1 connection would.
   */
  int64_t quietMs(int64_t now);
  /** Closes connections JS did not close within drainMs of being abandoned. */
  void sweep(int64_t now);
  /** Ends the session with a GOAWAY (NO_ERROR) once its output is written. */
  void goaway();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace h2gw
}  // namespace wrenn
