// Which capsule and port a request is for, if any.
import type http from 'node:http';
import { TRAFFIC_ACCESS_TOKEN_HEADER } from '@wrenn/protocol/contract';
import { requestAuthority } from '../tls/authority.js';

export interface ProxyRoute {
  kind: 'header' | 'host' | 'path';
  capsuleId: string;
  port: number;
  /** Path and query to send to the capsule's server. */
  path: string;
  /** For path routing: /proxy/<id>/<P>. */
  prefix?: string;
  /** The e2b-traffic-access-token the request sent (private capsules demand it). */
  trafficToken?: string;
}

const ID = 'cl-[0-9a-z]{1,64}';
const PATH_RE = new RegExp(`^/proxy/(${ID})/(\\d{1,5})(/.*)?$`);
const HOST_RE = new RegExp(`^(\\d{1,5})-(${ID})\\.`);

function header(req: http.IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function resolveRoute(req: http.IncomingMessage, domain: string): ProxyRoute | undefined {
  // HTTP/2 (TLS listener): the host is the request's :authority.
  return routeOf(req.url ?? '/', (name) => (name === 'host' ? requestAuthority(req) : header(req, name)), domain);
}

/** The route for a request target and its header fields (get takes a lowercase name). */
export function routeOf(
  url: string,
  get: (name: string) => string | undefined,
  domain: string,
): ProxyRoute | undefined {
  const route = capsuleRouteOf(url, get, domain);
  const token = route && get(TRAFFIC_ACCESS_TOKEN_HEADER);
  return token !== undefined && route ? { ...route, trafficToken: token } : route;
}

function capsuleRouteOf(
  url: string,
  get: (name: string) => string | undefined,
  domain: string,
): ProxyRoute | undefined {
  const id = get('e2b-sandbox-id');
  const port = get('e2b-sandbox-port');
  if (id && port) return { kind: 'header', capsuleId: id, port: Number(port), path: url };

  const host = (get('host') ?? '').replace(/:\d+$/, '').toLowerCase();
  const hm = HOST_RE.exec(host);
  if (hm && host.endsWith(`.${domain}`) && host.slice(hm[0].length - 1) === `.${domain}`) {
    return { kind: 'host', capsuleId: hm[2] ?? '', port: Number(hm[1]), path: url };
  }

  const q = url.indexOf('?');
  const pathname = q >= 0 ? url.slice(0, q) : url;
  const pm = PATH_RE.exec(pathname);
  if (pm) {
    const [, cid = '', p = '', rest] = pm;
    // "/proxy/<id>/<P>" without a slash: the server's root.
    return {
      kind: 'path',
      capsuleId: cid,
      port: Number(p),
      path: (rest ?? '/') + (q >= 0 ? url.slice(q) : ''),
      prefix: `/proxy/${cid}/${p}`,
    };
  }
  return undefined;
}
