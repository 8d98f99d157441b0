// Client for the envd inside one capsule: Connect (process, filesystem) plus its REST routes.
// Each capsule gets its own HTTP agent so one capsule's traffic never queues behind another's,
// and RPC traffic never shares a pool with the port proxy (the proxy has its own transport).
import http from 'node:http';
import { type Client, createClient, type Interceptor } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { ENVD_PORT } from '@wrenn/protocol';
import { Filesystem } from '@wrenn/protocol/gen/envd/filesystem_pb';
import { Process } from '@wrenn/protocol/gen/envd/process_pb';

export { ENVD_PORT };

export interface EnvdClient {
  baseUrl: string;
  process: Client<typeof Process>;
  filesystem: Client<typeof Filesystem>;
  /** Plain HTTP request to envd's REST surface (health, init, files, metrics). */
  request(
    method: string,
    path: string,
    opts?: { body?: Buffer | string; headers?: Record<string, string>; timeoutMs?: number },
  ): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>;
  /** Streams an HTTP request/response (file transfer). */
  raw(method: string, path: string, headers?: Record<string, string>): http.ClientRequest;
  close(): void;
}

/**
 * How long a connection to envd may sit unused before the agent closes it. envd keeps idle
 * connections for 10 minutes; held that long, every capsule used once keeps a socket (an fd on
 * each side) and TCP keepalive probes going while it is idle. Reconnecting costs well under a
 * millisecond on the capsule's veth. (For sockets in use the timeout only emits an event nobody
 * acts on, so long silent streams are not cut.)
 */
export const ENVD_IDLE_SOCKET_MS = 30_000;

export function createEnvdClient(address: string, accessToken?: string, port = ENVD_PORT): EnvdClient {
  const baseUrl = `http://${address}:${port}`;
  const agent = new http.Agent({
    keepAlive: true,
    maxSockets: 64,
    keepAliveMsecs: 10_000,
    timeout: ENVD_IDLE_SOCKET_MS,
  });
  const auth: Interceptor = (next) => async (req) => {
    if (accessToken) req.header.set('X-Access-Token', accessToken);
    return next(req);
  };
  const transport = createConnectTransport({
    baseUrl,
    httpVersion: '1.1',
    useBinaryFormat: true,
    interceptors: [auth],
    nodeOptions: { agent },
  });
  const baseHeaders = (): Record<string, string> => (accessToken ? { 'X-Access-Token': accessToken } : {});
  return {
    baseUrl,
    process: createClient(Process, transport),
    filesystem: createClient(Filesystem, transport),
    request(method, path, opts = {}) {
      return new Promise((resolve, reject) => {
        const req = http.request(
          `${baseUrl}${path}`,
          { method, agent, headers: { ...baseHeaders(), ...opts.headers }, timeout: opts.timeoutMs ?? 30_000 },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () =>
              resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
            );
            res.on('error', reject);
          },
        );
        req.on('timeout', () => req.destroy(new Error(`envd at ${baseUrl} did not answer ${method} ${path} in time`)));
        req.on('error', reject);
        req.end(opts.body);
      });
    },
    raw(method, path, headers = {}) {
      return http.request(`${baseUrl}${path}`, { method, agent, headers: { ...baseHeaders(), ...headers } });
    },
    close() {
      agent.destroy();
    },
  };
}

/** Polls GET /health until envd answers 204, or throws after `timeoutMs`. */
export async function waitForEnvd(address: string, timeoutMs = 10_000, port = ENVD_PORT): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 2;
  let lastError = 'no answer';
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const req = http.get({ host: address, port, path: '/health', timeout: 1000, agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode === 204 || res.statusCode === 200);
      });
      req.on('timeout', () => req.destroy());
      req.on('error', (e) => {
        lastError = e.message;
        resolve(false);
      });
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 50);
  }
  throw new Error(`envd at ${address}:${port} did not become healthy within ${timeoutMs} ms (${lastError})`);
}

/** Runs a short command to completion as `user` and returns its exit code (housekeeping inside a capsule). */
export async function runInCapsule(
  client: EnvdClient,
  cmd: string,
  args: string[],
  user = 'root',
  timeoutMs = 5000,
): Promise<number> {
  let exitCode = -1;
  const headers = { authorization: `Basic ${Buffer.from(`${user}:`).toString('base64')}` };
  for await (const res of client.process.start(
    { process: { cmd, args, envs: {} }, stdin: false },
    { headers, timeoutMs },
  )) {
    if (res.event?.event.case === 'end') exitCode = res.event.event.value.exitCode;
  }
  return exitCode;
}
