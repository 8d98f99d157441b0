// The HTTP protocol of E2B's @e2b/code-interpreter on port 49999:
//   POST /execute {code, context_id?, language?, env_vars?} -> JSON lines: stdout, stderr, result,
//        error, number_of_executions, end_of_execution (a keepalive line each second of silence)
//   POST /contexts {language?, cwd?} -> {id, language, cwd};  GET /contexts
//   POST /contexts/<id>/restart;  DELETE /contexts/<id>;  GET /health
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Contexts } from './contexts.js';
import { normalizeLanguage, UnknownLanguageError } from './languages.js';
import type { OutputLine } from './output.js';

const MAX_BODY = 16 * 1024 * 1024;
// The sandbox proxy learns that a client left only when it writes to it (a half-closed client may
// still want its response), so a silent cell writes a keepalive line each second: a client gone
// (its timeout) is then noticed, and its cell interrupted, within about two seconds.
const KEEPALIVE_MS = 1000;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const log = (level: string, msg: string, extra: Record<string, unknown> = {}) =>
  process.stderr.write(`${JSON.stringify({ level, msg, ...extra })}\n`);

function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' }).end(body);
}

function json(res: ServerResponse, body: unknown): void {
  res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new HttpError(413, `body larger than ${MAX_BODY} bytes`);
    chunks.push(chunk);
  }
  if (size === 0) return {};
  let data: unknown;
  try {
    data = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new HttpError(400, `body is not JSON: ${(err as Error).message}`);
  }
  if (!data || typeof data !== 'object' || Array.isArray(data)) throw new HttpError(400, 'body must be a JSON object');
  return data as Record<string, unknown>;
}

function checkedEnvs(value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value))
    throw new HttpError(400, 'env_vars must be an object of strings');
  const envs: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw new HttpError(400, 'env_vars must be an object of strings');
    if (!k || k.includes('=') || k.includes('\0') || v.includes('\0'))
      throw new HttpError(400, `env var name ${JSON.stringify(k)} is invalid`);
    envs[k] = v;
  }
  return envs;
}

function language(value: unknown) {
  try {
    return normalizeLanguage(value);
  } catch (err) {
    if (err instanceof UnknownLanguageError) throw new HttpError(400, err.message);
    throw err;
  }
}

async function execute(contexts: Contexts, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await readJson(req);
  const { code, context_id: contextId, language: lang } = body;
  if (typeof code !== 'string') throw new HttpError(400, 'code must be a string');
  if (contextId && lang) throw new HttpError(400, 'Only one of context_id or language can be provided');
  const envs = checkedEnvs(body.env_vars);
  let ctx = contextId ? contexts.all.get(String(contextId)) : undefined;
  if (contextId && !ctx) throw new HttpError(404, `Context ${contextId} not found`);
  if (!ctx) {
    const l = language(lang);
    ctx = await contexts.defaultFor(l).catch((err) => {
      throw new HttpError(500, `could not start the ${l} context: ${(err as Error).message}`);
    });
  }
  const token = req.headers['x-access-token'];
  const sandboxEnvs = await contexts.sandboxEnv(typeof token === 'string' ? token : undefined);
  res.writeHead(200, { 'Content-Type': 'application/x-ndjson' });
  let gone = false;
  let lastWrite = Date.now();
  const target = ctx;
  const leave = () => {
    if (gone || res.writableEnded) return;
    gone = true;
    // The client went away (its timeout, or it was killed): stop the cell so the context is
    // free for the next one.
    log('info', 'client left during an execution; interrupting', { context: target.id });
    void target.interrupt();
  };
  res.on('close', leave);
  req.socket.on('end', leave);
  const write = (line: OutputLine) => {
    if (gone) return;
    lastWrite = Date.now();
    res.write(`${JSON.stringify(line)}\n`);
  };
  const keepalive = setInterval(() => {
    if (Date.now() - lastWrite >= KEEPALIVE_MS) write({ type: 'keepalive' });
  }, KEEPALIVE_MS / 2);
  try {
    await ctx.execute(code, envs, sandboxEnvs, write);
  } finally {
    clearInterval(keepalive);
    req.socket.off('end', leave);
    if (!gone) res.end();
  }
}

async function route(contexts: Contexts, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  const method = req.method ?? 'GET';
  if (path === '/health' && method === 'GET') return text(res, 200, 'OK');
  if (path === '/execute' && method === 'POST') return execute(contexts, req, res);
  if (path === '/contexts' && method === 'GET')
    return json(
      res,
      [...contexts.all.values()].map((c) => c.describe()),
    );
  if (path === '/contexts' && method === 'POST') {
    const body = await readJson(req);
    const cwd = body.cwd || undefined;
    if (cwd !== undefined && (typeof cwd !== 'string' || !cwd.startsWith('/')))
      throw new HttpError(400, 'cwd must be an absolute path');
    const l = language(body.language);
    const ctx = await contexts.create(l, cwd).catch((err) => {
      throw new HttpError(500, `could not create the context: ${(err as Error).message}`);
    });
    return json(res, ctx.describe());
  }
  const one = /^\/contexts\/([A-Za-z0-9-]+)(\/restart)?$/.exec(path);
  if (one?.[1]) {
    const id = one[1];
    if (one[2] && method === 'POST') {
      const ctx = contexts.all.get(id);
      if (!ctx) throw new HttpError(404, `Context ${id} not found`);
      await ctx.restart().catch((err) => {
        throw new HttpError(500, `Failed to restart context ${id}: ${(err as Error).message}`);
      });
      res.writeHead(204).end();
      return;
    }
    if (!one[2] && method === 'DELETE') {
      if (!(await contexts.remove(id))) throw new HttpError(404, `Context ${id} not found`);
      res.writeHead(204).end();
      return;
    }
    throw new HttpError(405, `${method} is not allowed on ${path}`);
  }
  throw new HttpError(404, `no route for ${method} ${path}`);
}

export function codeInterpreterServer(contexts: Contexts): Server {
  const server = createServer((req, res) => {
    route(contexts, req, res).catch((err) => {
      const status = err instanceof HttpError ? err.status : 500;
      if (status === 500) log('error', 'request failed', { err: String(err) });
      if (!res.headersSent) text(res, status, (err as Error).message);
      else res.end();
    });
  });
  // The sandbox proxy keeps connections to us open between calls: close idle ones long after it
  // would (Node's 5 s default races a reused connection and fails that call with a reset).
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 125_000;
  return server;
}
