// A loopback proxy in front of a test registry that can hold layer downloads half-way, so a test
// can watch a pull in progress (its progress lines, a build or create still waiting) and then let
// it finish. Blobs of 1 KiB or less (configs) always pass.
import { createServer, type ServerResponse } from 'node:http';
import type { TestRegistry } from './oci-registry.js';

export interface GatedRegistry {
  /** host:port of the proxy on 127.0.0.1 (use it in image references). */
  host: string;
  /** Later layer downloads send half their bytes, then wait for release(). */
  hold(): void;
  /** Sends the rest of every held download; later ones pass. */
  release(): void;
  /** Layer downloads held right now. */
  readonly held: number;
  stop(): Promise<void>;
}

export async function startGatedRegistry(reg: TestRegistry): Promise<GatedRegistry> {
  let holding = false;
  const waiting: { res: ServerResponse; rest: Buffer }[] = [];
  const server = createServer((req, res) => {
    void (async () => {
      const up = await fetch(`http://${reg.host}${req.url ?? '/'}`, {
        method: req.method ?? 'GET',
        headers: {
          accept: String(req.headers.accept ?? '*/*'),
          ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
        },
        redirect: 'manual',
      });
      const body = Buffer.from(await up.arrayBuffer());
      const headers: Record<string, string> = {};
      for (const h of ['content-type', 'docker-content-digest', 'www-authenticate', 'location']) {
        const v = up.headers.get(h);
        if (v) headers[h] = v;
      }
      const layer = req.method === 'GET' && up.status === 200 && /\/blobs\/sha256:/.test(req.url ?? '');
      const length = req.method === 'HEAD' ? (up.headers.get('content-length') ?? '0') : String(body.length);
      res.writeHead(up.status, { ...headers, 'content-length': length });
      if (layer && holding && body.length > 1024) {
        res.write(body.subarray(0, body.length >> 1));
        waiting.push({ res, rest: body.subarray(body.length >> 1) });
        return;
      }
      res.end(req.method === 'HEAD' ? undefined : body);
    })().catch((err: unknown) => res.destroy(err instanceof Error ? err : new Error(String(err))));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const release = () => {
    holding = false;
    for (const w of waiting.splice(0)) w.res.end(w.rest);
  };
  return {
    host: `127.0.0.1:${(server.address() as { port: number }).port}`,
    hold: () => {
      holding = true;
    },
    release,
    get held() {
      return waiting.length;
    },
    stop: async () => {
      release();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
