// Puts the native TLS front (@wrenn/native createTlsFront) under the control plane's TLS listener:
// each accepted TCP connection goes to the front's thread before Node reads a byte, and its
// plaintext comes back as the listener's 'secureConnection', where the sandbox proxy and the API
// server take it as they take a Node TLSSocket. Why: with Node's TLS every encrypted byte costs the
// event loop (and a TLS connection could not reach the byte relay), which held the proxy over TLS
// to 0.49 (HTTP/1.1) of direct; see README "Figures" (proxy-tls). The default; WRENN_TLS_FRONT=node
// keeps Node's TLS (also used when the built addon lacks the front). The front also terminates h2
// (cpp/h2-gateway.cc): each stream arrives as an HTTP/1.1 request on a keep-alive plaintext
// connection of its own, so the proxy's piped path and relay carry h2 as they carry HTTP/1.1 (h2
// through the proxy was 0.42 of direct on Node's http2 session); WRENN_TLS_H2=node keeps h2 in Node.
import type net from 'node:net';
import type tls from 'node:tls';
import { createTlsFront, tlsFrontAvailable } from '@wrenn/native';
import type { Logger } from 'pino';
import type { TlsMaterial } from './certificates.js';

export interface NativeTlsFront {
  close(): void;
}

/** Which TLS the listener uses: WRENN_TLS_FRONT `native` (default) or `node`. */
export function tlsFrontMode(env: NodeJS.ProcessEnv = process.env): 'native' | 'node' {
  const raw = env.WRENN_TLS_FRONT;
  if (raw === undefined || raw === '' || raw === 'native') return 'native';
  if (raw === 'node') return 'node';
  throw new Error(`WRENN_TLS_FRONT must be "native" or "node", got "${raw}"`);
}

/** Where h2 is terminated: WRENN_TLS_H2 `native` (default: in the front's thread) or `node` (Node's http2 server). */
export function tlsH2Mode(env: NodeJS.ProcessEnv = process.env): 'native' | 'node' {
  const raw = env.WRENN_TLS_H2;
  if (raw === undefined || raw === '' || raw === 'native') return 'native';
  if (raw === 'node') return 'node';
  throw new Error(`WRENN_TLS_H2 must be "native" or "node", got "${raw}"`);
}

/** Takes over the listener's TLS when the native front is available and wanted; else undefined. */
export function attachNativeTls(
  server: tls.Server,
  material: TlsMaterial,
  handshakeTimeoutMs: number,
  log: Logger,
): NativeTlsFront | undefined {
  if (tlsFrontMode() !== 'native') return undefined;
  if (!tlsFrontAvailable()) {
    log.warn('the native TLS front is not in the built addon: TLS stays in Node (slower proxy over TLS)');
    return undefined;
  }
  const front = createTlsFront({
    cert: material.cert,
    key: material.key,
    handshakeTimeoutMs,
    // h2 streams reach the server as HTTP/1.1 requests, whose keep-alive connections the sandbox
    // proxy hands to the native relay (no JS per request).
    h2Native: tlsH2Mode() === 'native',
    // An h2 session with no stream and no connection into JS gets as long as an HTTP/1.1
    // connection's first request head; its connections into JS keep JS's own idle timeouts.
    h2IdleMs: handshakeTimeoutMs,
    onConnection(socket) {
      // What a TLSSocket from this server has: the HTTP/1.1 fallback and the h2 session read it.
      (socket as net.Socket & { server?: unknown }).server = server;
      server.emit('secureConnection', socket);
    },
  });
  // Node's own TLS wrapping (tls.Server's 'connection' listener) runs only for a socket the front
  // could not take.
  const nodeTls = server.listeners('connection') as Array<(socket: net.Socket) => void>;
  server.removeAllListeners('connection');
  server.on('connection', (socket: net.Socket) => {
    if (front.take(socket)) return;
    for (const l of nodeTls) l.call(server, socket);
  });
  return front;
}
