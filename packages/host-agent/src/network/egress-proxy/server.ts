// The agent's egress proxy. Capsules with domain rules (allowOut domains or `rules`) have their TCP
// to ports 80 and 443 (but to allowOut CIDRs) REDIRECTed here by the firewall (nat <P>-PROXY). The
// proxy tells the capsule by its source address (rp_filter pins it), reads the name asked for (the
// TLS ClientHello's SNI, the HTTP Host header), resolves it on the host, judges it (verdict.ts) and
// connects upstream itself: the address the capsule dialled is never used, so a spoofed SNI only
// ever reaches the host it names. Domains with `rules` are terminated (HTTP here; HTTPS with a
// certificate from the egress CA, see egress-ca.ts) and each request is re-sent with the rule's
// headers set, so the values never enter the capsule.
//
// Once a connection is judged, its bytes move on the native relay thread (@wrenn/native relay, the
// one the sandbox proxy uses), not through Node streams: the peeked ClientHello / request head goes
// upstream first. Plain HTTP stays in the relay's HTTP mode (transparent: heads go out as written),
// so each later request on a kept-alive connection must carry the same Host; another Host hands the
// connection back here to be judged again on a new upstream connection. A request the relay does not
// parse (an upgrade, HTTP/1.0) carries the rest of its connection as bytes, to the judged address only.
import { Resolver } from 'node:dns/promises';
import {
  createServer as createHttpServer,
  Agent as HttpAgent,
  type IncomingMessage,
  request,
  type ServerResponse,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { connect, createServer, isIPv4, type Server, type Socket } from 'node:net';
import { createSecureContext, type SecureContext, TLSSocket } from 'node:tls';
import { type RelayedPair, type RelayResult, relayAvailable, relayCloseGroup, relaySockets } from '@wrenn/native';
import { getExtensionData, readTlsClientHello } from 'read-tls-client-hello';
import type { CapsuleEgress } from '../manager.js';
import { egressVerdict, rulesFor } from './verdict.js';

export interface EgressProxyOptions {
  httpPort: number;
  tlsPort: number;
  /** Listen address (default all: the REDIRECT lands on the host side of each capsule's veth). */
  host?: string;
  /** The capsule behind a source address (undefined: not a capsule of this host). */
  lookup(remoteAddress: string): CapsuleEgress | undefined;
  /** Addresses capsule `e` may not reach whatever its policy says (closed ranges, the host itself). */
  closed(ip: string, e: CapsuleEgress): boolean;
  /** Name servers to resolve with (the capsules' own); empty: the host's resolv.conf. */
  dnsServers: readonly string[];
  /** A TLS context for `host` signed by the egress CA (HTTPS rules); absent: HTTPS rules are refused. */
  secureContextFor?(host: string): Promise<SecureContext>;
  /** CAs the proxy trusts for HTTPS it re-sends (default: Node's). */
  upstreamCa?: string[];
  log?(level: 'info' | 'warn', msg: string, fields: Record<string, unknown>): void;
  /** Move judged connections' bytes on the native relay (default: when the addon has it). */
  relay?: boolean;
}

export interface EgressProxy {
  close(): Promise<void>;
}

const HEAD_LIMIT = 64 * 1024;
const FIRST_BYTES_TIMEOUT_MS = 10_000;

type Target = { ip: string } | { refused: string };

/** The relay group of a capsule's egress connections. */
const groupOf = (capsuleId: string) => `egress:${capsuleId}`;

/** Ends every egress connection capsule `id` has on the relay (its network is going away). */
export function closeEgressConnections(capsuleId: string): void {
  relayCloseGroup(groupOf(capsuleId));
}

export async function startEgressProxy(o: EgressProxyOptions): Promise<EgressProxy> {
  const resolver = new Resolver({ timeout: 3000, tries: 2 });
  if (o.dnsServers.length) resolver.setServers([...o.dnsServers]);
  const sockets = new Set<Socket>();
  const pairs = new Set<RelayedPair>();
  const useRelay = o.relay ?? relayAvailable();
  const log = o.log ?? (() => undefined);

  /** Resolves `host` on the host and picks the first address the policy allows. */
  async function target(e: CapsuleEgress, host: string): Promise<Target> {
    let ips: string[];
    try {
      ips = isIPv4(host) ? [host] : await resolver.resolve4(host);
    } catch (err) {
      return { refused: `${host} does not resolve (${(err as NodeJS.ErrnoException).code ?? err})` };
    }
    let why = `${host} has no IPv4 address`;
    for (const ip of ips) {
      const v = egressVerdict(e, host, ip, (a) => o.closed(a, e));
      if (v.allow) return { ip };
      why = v.why;
    }
    return { refused: why };
  }

  /**
   * Connects to the judged address and moves the connection's bytes both ways (what was peeked
   * first). `hostValue`: plain HTTP, every later request must carry this Host to stay on the relay.
   */
  function carry(client: Socket, e: CapsuleEgress, ip: string, port: number, hostValue?: string): void {
    const up = connect({ host: ip, port });
    track(up);
    up.setNoDelay(true);
    client.setNoDelay(true);
    const end = () => {
      client.destroy();
      up.destroy();
    };
    up.once('error', end);
    client.once('error', end);
    client.once('close', () => up.destroy());
    if (!useRelay) {
      client.pipe(up).pipe(client);
      return;
    }
    up.once('connect', () => {
      if (client.destroyed) return;
      sockets.delete(client);
      sockets.delete(up);
      const http =
        hostValue === undefined
          ? undefined
          : {
              kind: 'host' as const,
              host: hostValue,
              remote: '',
              targetHost: ip,
              targetPort: port,
              inflight: [],
              req: 'head' as const,
              transparent: true,
            };
      const pair = relaySockets(client, up, { group: groupOf(e.id), ...(http ? { http } : {}) });
      pairs.add(pair);
      pair.once('close', (r: RelayResult) => {
        pairs.delete(pair);
        if (r.reason === 'handback' && r.client) handBack(r.client, r.rest, e, ip, r.aToB);
      });
    });
  }

  /**
   * The relay returned a plain-HTTP client connection: the next request names another Host, the
   * server closed a kept-alive connection, or the relay does not parse the request. Nothing of this
   * connection forwarded yet means the last: the head was judged already, the rest goes as bytes.
   */
  function handBack(client: Socket, rest: Buffer | undefined, e: CapsuleEgress, ip: string, forwarded: number): void {
    track(client);
    client.on('error', () => undefined);
    if (rest?.length) client.unshift(rest);
    if (forwarded === 0) return carry(client, e, ip, 80);
    judge(client, e, 80, onHttp);
  }

  function track(s: Socket): void {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  }

  // Requests of hosts with rules, HTTP or terminated TLS alike: judged and re-sent one by one, on
  // kept-alive upstream connections (one trust context built once, not one per request).
  const upstreamContext = o.upstreamCa ? createSecureContext({ ca: o.upstreamCa }) : undefined;
  const keep = { keepAlive: true, timeout: UPSTREAM_IDLE_MS };
  const agents = { http: new (perCapsule(HttpAgent))(keep), https: new (perCapsule(HttpsAgent))(keep) };
  const rewriter = createHttpServer((req, res) => void forward(req, res));
  async function forward(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const sock = req.socket as Socket & { egress?: CapsuleEgress; tlsHost?: string };
    const e = sock.egress;
    const host = hostOf(req.headers.host);
    const refuse = (why: string) => {
      res.writeHead(403, { 'content-type': 'text/plain', connection: 'close' });
      res.end(`wrenn egress: ${why}\n`);
    };
    if (!e || !host) return refuse('no Host header');
    if (sock.tlsHost && sock.tlsHost !== host) return refuse(`Host ${host} differs from the TLS name ${sock.tlsHost}`);
    const t = await target(e, host);
    if ('refused' in t) return refuse(t.refused);
    const headers = { ...req.headers };
    // Hop-by-hop: the upstream connection is the proxy's own.
    for (const h of ['connection', 'keep-alive', 'proxy-connection']) delete headers[h];
    for (const [k, v] of Object.entries(rulesFor(e, host) ?? {})) {
      for (const have of Object.keys(headers)) if (have.toLowerCase() === k.toLowerCase()) delete headers[have];
      headers[k] = v;
    }
    const opts = { host: t.ip, method: req.method, path: req.url, headers, setHost: false, capsule: e.id };
    const up = sock.tlsHost
      ? httpsRequest({
          ...opts,
          port: 443,
          servername: host,
          agent: agents.https,
          ...(upstreamContext ? { secureContext: upstreamContext } : {}),
        })
      : request({ ...opts, port: 80, agent: agents.http });
    up.once('response', (r) => {
      res.writeHead(r.statusCode ?? 502, r.rawHeaders);
      r.pipe(res);
    });
    up.once('error', (err) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`wrenn egress: upstream ${host}: ${err.message}\n`);
    });
    req.pipe(up);
  }

  async function onHttp(client: Socket, e: CapsuleEgress): Promise<void> {
    const head = await readHead(client);
    // The first Host field, as the relay reads it (its value trimmed).
    const hostValue = /\r\nhost:[ \t]*([^\r\n]*?)[ \t]*\r\n/i.exec(head.toString('latin1'))?.[1];
    const host = hostOf(hostValue);
    client.unshift(head);
    if (host && rulesFor(e, host)) {
      Object.assign(client, { egress: e });
      rewriter.emit('connection', client);
      client.resume(); // readHead paused it; the head is in its buffer for the parser
      return;
    }
    const t = host ? await target(e, host) : { refused: 'no Host header' };
    if ('refused' in t) {
      log('info', 'egress refused', { capsule: e.id, host, why: t.refused });
      client.end(
        `HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nwrenn egress: ${t.refused}\n`,
      );
      return;
    }
    carry(client, e, t.ip, 80, hostValue);
  }

  async function onTls(client: Socket, e: CapsuleEgress): Promise<void> {
    const hello = await readTlsClientHello(client);
    const host = getExtensionData(hello, 'sni')?.serverName?.toLowerCase();
    if (!host) throw new Error('no SNI in the ClientHello');
    if (rulesFor(e, host)) {
      if (!o.secureContextFor) throw new Error(`${host} has rules but this agent has no egress CA`);
      const first = await target(e, host);
      if ('refused' in first) throw new Error(first.refused);
      const tls = new TLSSocket(client, { isServer: true, secureContext: await o.secureContextFor(host) });
      Object.assign(tls, { egress: e, tlsHost: host });
      rewriter.emit('connection', tls);
      return;
    }
    const t = await target(e, host);
    if ('refused' in t) throw new Error(t.refused);
    carry(client, e, t.ip, 443);
  }

  /** Runs `handle` on a capsule's new connection; a refusal closes it. */
  function judge(
    client: Socket,
    e: CapsuleEgress,
    port: number,
    handle: (c: Socket, e: CapsuleEgress) => Promise<void>,
  ) {
    client.setTimeout(FIRST_BYTES_TIMEOUT_MS, () => client.destroy());
    handle(client, e)
      .then(() => client.setTimeout(0))
      .catch((err: Error) => {
        log('info', 'egress refused', { capsule: e.id, port, why: err.message });
        client.destroy();
      });
  }

  const listen = async (port: number, handle: (c: Socket, e: CapsuleEgress) => Promise<void>): Promise<Server> => {
    const server = createServer({ pauseOnConnect: false }, (client) => {
      track(client);
      client.on('error', () => undefined);
      const e = o.lookup(client.remoteAddress ?? '');
      if (!e) return void client.destroy();
      judge(client, e, port, handle);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, o.host ?? '0.0.0.0', () => resolve());
    });
    return server;
  };
  const servers = [await listen(o.httpPort, onHttp), await listen(o.tlsPort, onTls)];
  return {
    async close() {
      for (const s of sockets) s.destroy();
      for (const p of pairs) p.close();
      await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
      rewriter.close();
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}

/** How long a kept-alive upstream connection of the header-rules path may sit unused. */
const UPSTREAM_IDLE_MS = 15_000;

/**
 * An Agent whose kept-alive connections are per capsule (the request option `capsule`): two
 * capsules never share an upstream connection, so nothing bound to a connection crosses between them.
 */
function perCapsule<A extends typeof HttpAgent | typeof HttpsAgent>(Base: A): A {
  return class extends (Base as typeof HttpAgent) {
    override getName(options?: Parameters<HttpAgent['getName']>[0] & { capsule?: string }): string {
      return `${super.getName(options)}:${options?.capsule ?? ''}`;
    }
  } as A;
}

/** A Host header's name (lower case, port dropped); undefined for none or an IPv6 literal. */
function hostOf(value: string | undefined): string | undefined {
  const v = value?.trim().toLowerCase();
  if (!v || v.startsWith('[')) return undefined;
  return v.replace(/:\d+$/, '').replace(/\.$/, '') || undefined;
}

/** Reads until the end of an HTTP request head (not consumed: the caller unshifts it). */
function readHead(s: Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.includes('\r\n\r\n') || buf.length > HEAD_LIMIT) {
        s.off('data', onData);
        s.off('end', onEnd);
        s.pause();
        resolve(buf);
      }
    };
    const onEnd = () => reject(new Error('connection closed before a request head'));
    s.on('data', onData);
    s.once('end', onEnd);
  });
}
