// The agent's egress proxy. Capsules with domain rules (allowOut domains or `rules`) have their TCP
// to ports 80 and 443 (but to allowOut CIDRs) REDIRECTed here by the firewall (nat <P>-PROXY). The
// proxy tells the capsule by its source address (rp_filter pins it), reads the name asked for (the
// TLS ClientHello's SNI, the HTTP Host header), resolves it on the host, judges it (verdict.ts) and
// connects upstream itself: the address the capsule dialled is never used, so a spoofed SNI only
// ever reaches the host it names. Domains with `rules` are terminated (HTTP here; HTTPS with a
// certificate from the egress CA, see egress-ca.ts) and each request is re-sent with the rule's
// headers set, so the values never enter the capsule.
import { Resolver } from 'node:dns/promises';
import { createServer as createHttpServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect, createServer, isIPv4, type Server, type Socket } from 'node:net';
import { type SecureContext, TLSSocket } from 'node:tls';
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
}

export interface EgressProxy {
  close(): Promise<void>;
}

const HEAD_LIMIT = 64 * 1024;
const FIRST_BYTES_TIMEOUT_MS = 10_000;

type Target = { ip: string } | { refused: string };

export async function startEgressProxy(o: EgressProxyOptions): Promise<EgressProxy> {
  const resolver = new Resolver({ timeout: 3000, tries: 2 });
  if (o.dnsServers.length) resolver.setServers([...o.dnsServers]);
  const sockets = new Set<Socket>();
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

  function splice(client: Socket, ip: string, port: number): void {
    const up = connect({ host: ip, port });
    sockets.add(up);
    up.once('close', () => sockets.delete(up));
    up.setNoDelay(true);
    client.setNoDelay(true);
    client.pipe(up).pipe(client);
    const end = () => {
      client.destroy();
      up.destroy();
    };
    up.once('error', end);
    client.once('error', end);
  }

  // Requests of hosts with rules, HTTP or terminated TLS alike: judged and re-sent one by one.
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
    for (const [k, v] of Object.entries(rulesFor(e, host) ?? {})) {
      for (const have of Object.keys(headers)) if (have.toLowerCase() === k.toLowerCase()) delete headers[have];
      headers[k] = v;
    }
    const opts = { host: t.ip, method: req.method, path: req.url, headers, setHost: false };
    const up = sock.tlsHost
      ? httpsRequest({ ...opts, port: 443, servername: host, ...(o.upstreamCa ? { ca: o.upstreamCa } : {}) })
      : request({ ...opts, port: 80 });
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
    const host = hostOf(/\r\nhost:[ \t]*([^\r\n]*)/i.exec(head.toString('latin1'))?.[1]);
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
    splice(client, t.ip, 80);
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
    splice(client, t.ip, 443);
  }

  const listen = async (port: number, handle: (c: Socket, e: CapsuleEgress) => Promise<void>): Promise<Server> => {
    const server = createServer({ pauseOnConnect: false }, (client) => {
      sockets.add(client);
      client.once('close', () => sockets.delete(client));
      client.on('error', () => undefined);
      const e = o.lookup(client.remoteAddress ?? '');
      if (!e) return void client.destroy();
      client.setTimeout(FIRST_BYTES_TIMEOUT_MS, () => client.destroy());
      handle(client, e)
        .then(() => client.setTimeout(0))
        .catch((err: Error) => {
          log('info', 'egress refused', { capsule: e.id, port, why: err.message });
          client.destroy();
        });
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
      await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
      rewriter.close();
    },
  };
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
