// A Connect client for the envd inside one capsule, reached the way the sandbox proxy reaches any
// capsule port (directly on `wrenn up`, else through the host agent's /proxy). Used by the routes
// the host agent has no RPC for (rename, stat, watch, stdin of running processes).
import http from 'node:http';
import { type Client, createClient, type Interceptor } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { ENVD_PORT } from '@wrenn/protocol';
import { Filesystem } from '@wrenn/protocol/gen/envd/filesystem_pb';
import { Process } from '@wrenn/protocol/gen/envd/process_pb';
import type { ControlPlaneContext } from '../../context.js';
import { ProxyTargets } from '../../proxy/targets.js';
import type { Capsule } from '../../services/capsules.js';
import { ApiError } from '../errors.js';

export interface CapsuleEnvd {
  process: Client<typeof Process>;
  filesystem: Client<typeof Filesystem>;
  close(): void;
}

/** Headers that make envd act as `user` (E2B's convention: Basic auth with the user name). */
export function userHeaders(user: string | undefined): Record<string, string> {
  return user ? { authorization: `Basic ${Buffer.from(`${user}:`).toString('base64')}` } : {};
}

export function envdAccess(ctx: ControlPlaneContext) {
  const targets = new ProxyTargets(ctx);
  return async function envdFor(capsule: Capsule): Promise<CapsuleEnvd> {
    const t = await targets.lookup(capsule.id, ENVD_PORT);
    // The proxy's failures are E2B's shape; this is the native API: a bad port is the caller's,
    // anything else means the capsule is not running (it was found by the caller just before).
    if ('status' in t)
      throw t.status === 400
        ? new ApiError(400, 'invalid_argument', t.message)
        : new ApiError(409, 'capsule_not_running', t.detail ?? t.message);
    const host = t.host.includes(':') ? `[${t.host}]` : t.host;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    const token = capsule.envdAccessToken;
    const auth: Interceptor = (next) => async (req) => {
      if (token) req.header.set('X-Access-Token', token);
      for (const [k, v] of Object.entries(t.headers ?? {})) req.header.set(k, v);
      return next(req);
    };
    const transport = createConnectTransport({
      baseUrl: `http://${host}:${t.port}${t.pathPrefix}`,
      httpVersion: '1.1',
      useBinaryFormat: true,
      interceptors: [auth],
      nodeOptions: { agent },
    });
    return {
      process: createClient(Process, transport),
      filesystem: createClient(Filesystem, transport),
      close: () => agent.destroy(),
    };
  };
}
