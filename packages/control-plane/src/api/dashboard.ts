// The web dashboard: the static files of packages/dashboard/dist (a Vite build) at `/`, with an
// SPA fallback so a deep link like /capsules/cl-123 loads the app. Registered after every API
// route: Fastify prefers static routes over this wildcard, and the API's own prefixes are never
// answered here (an unknown /v1/... path stays the API's JSON 404).
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** Paths that belong to the APIs, docs and proxy; the dashboard never shadows them. */
const RESERVED = [
  '/v1',
  '/v2',
  '/sandboxes',
  '/templates',
  '/snapshots',
  '/docs',
  '/openapi.yaml',
  '/health',
  '/test',
  '/metrics',
  '/proxy',
];

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
};

/** packages/dashboard/dist, found from this file (dist/src/api/dashboard.js) unless WRENN_DASHBOARD_DIR says otherwise. */
export function defaultDashboardDir(): string {
  return (
    process.env.WRENN_DASHBOARD_DIR ?? resolve(dirname(fileURLToPath(import.meta.url)), '../../../../dashboard/dist')
  );
}

const isReserved = (path: string) => RESERVED.some((p) => path === p || path.startsWith(`${p}/`));

async function fileAt(root: string, urlPath: string): Promise<string | undefined> {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return undefined;
  }
  if (decoded.includes('\0')) return undefined;
  const full = resolve(root, `.${decoded}`);
  if (full !== root && !full.startsWith(root + sep)) return undefined;
  try {
    const s = await stat(full);
    return s.isFile() ? full : undefined;
  } catch {
    return undefined;
  }
}

function sendFile(reply: FastifyReply, file: string, immutable: boolean) {
  return (
    reply
      .type(TYPES[extname(file)] ?? 'application/octet-stream')
      // Vite puts a content hash in every asset name; index.html must be checked each time.
      .header('cache-control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache')
      .header('x-content-type-options', 'nosniff')
      .send(createReadStream(file))
  );
}

const NOT_BUILT = `<!doctype html><html lang="en"><meta charset="utf-8"><title>Wrenn</title>
<body style="font-family:sans-serif;max-width:40em;margin:3em auto"><h1>The dashboard is not built</h1>
<p>Run <code>npm run build</code> (or <code>npm run setup</code>) in the Wrenn checkout, then reload.
The API works without it: see <a href="/docs">/docs</a>.</p></body></html>`;

export function registerDashboard(app: FastifyInstance, opts: { dir?: string } = {}): void {
  const root = resolve(opts.dir ?? defaultDashboardDir());
  const handler = async (req: FastifyRequest, reply: FastifyReply) => {
    const path = req.url.split('?')[0] ?? '/';
    if (isReserved(path)) return reply.callNotFound();
    const file = path === '/' ? undefined : await fileAt(root, path);
    if (file) return sendFile(reply, file, path.startsWith('/assets/'));
    // Deep links of the single-page app: any other page a browser asks for gets index.html.
    const wantsHtml = (req.headers.accept ?? '').includes('text/html') || path === '/';
    if (!wantsHtml || path.startsWith('/assets/')) return reply.callNotFound();
    const index = join(root, 'index.html');
    if (!(await fileAt(root, '/index.html')))
      return reply.status(503).type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(NOT_BUILT);
    return sendFile(reply, index, false);
  };
  app.get('/', { schema: { hide: true } }, handler);
  app.get('/*', { schema: { hide: true } }, handler);
}
