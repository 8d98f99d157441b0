// A direct path for unary Connect calls (POST, application/proto or application/json) to envd's
// services: List, SendInput, SendSignal, Stat, ListDir, MakeDir, ...
// Why: connect-es's generic handler costs about a millisecond per call on a small machine (universal
// request/response conversion, header copies, AbortSignals and async-iterable plumbing) for calls
// whose own work is a table lookup or one stat. This path calls the same service implementations
// with connect-es's own serializers, error JSON, HTTP status mapping, timeout parsing and response
// compression, in connect-es's order: protocol errors, body, access token, implementation.
// Anything else (GET, a query string, other content types, a compressed request body, a method the
// service does not implement, streaming methods) goes to the Connect router unchanged.
// Tests: packages/envd/test/unary-fast-path.test.ts (compared with the router); process.test.ts,
// filesystem.test.ts and the e2b SDK suites drive it.
import { create, type DescMessage, type DescMethod, type DescService } from '@bufbuild/protobuf';
import { Code, ConnectError, createContextValues, type HandlerContext } from '@connectrpc/connect';
import {
  compressionNegotiate,
  createAsyncIterable,
  createMethodSerializationLookup,
  type MethodSerializationLookup,
  mergeNonProtocolHeaders,
  readAllBytes,
  validateUniversalHandlerOptions,
} from '@connectrpc/connect/protocol';
import { codeToHttpStatus, errorToJsonBytes, parseTimeout } from '@connectrpc/connect/protocol-connect';
import { compressionBrotli, compressionGzip } from '@connectrpc/connect-node';
import { tokenMatches } from '../auth.js';
import type { Req, Res } from '../http/respond.js';
import type { EnvdState } from '../state.js';
import { RequestHeaderView } from './request-header-view.js';

/** Calls served by this path (tests check that the path was taken). */
export const unaryFastPathStats = { calls: 0 };

type UnaryFn = (req: unknown, ctx: HandlerContext) => unknown;
interface Route {
  service: DescService;
  method: DescMethod;
  impl: UnaryFn;
  /** Made on the route's first call (twenty-odd methods' serializers cost ~1 ms at envd's start). */
  serialization?: MethodSerializationLookup<DescMessage, DescMessage>;
}

const CONTENT_TYPES: Record<string, boolean> = { 'application/proto': true, 'application/json': false };

/**
 * Returns a handler that serves a unary call and returns true, or returns false (without touching
 * the request) when the call is for the Connect router. `services` are the same implementations the
 * router serves; options as server.ts gives connectNodeAdapter (gzip and br, connect-es defaults).
 */
export function createUnaryFastPath(
  state: EnvdState,
  services: { service: DescService; impl: object }[],
): (req: Req, res: Res) => boolean {
  const opt = validateUniversalHandlerOptions({ acceptCompression: [compressionGzip, compressionBrotli] });
  const routes = new Map<string, Route>();
  for (const { service, impl } of services) {
    for (const method of service.methods) {
      const fn = (impl as Record<string, unknown>)[method.localName];
      if (method.methodKind !== 'unary' || typeof fn !== 'function') continue;
      routes.set(`/${service.typeName}/${method.name}`, {
        service,
        method,
        impl: (fn as UnaryFn).bind(impl),
      });
    }
  }

  return function unaryFastPath(req, res) {
    if (req.method !== 'POST') return false;
    const route = routes.get(req.url ?? '');
    if (!route) return false;
    const binary = CONTENT_TYPES[req.headers['content-type'] ?? ''];
    if (binary === undefined || req.headers['content-encoding'] !== undefined) return false;
    unaryFastPathStats.calls++;
    void serveUnary(route, req, res, binary);
    return true;
  };

  async function serveUnary(route: Route, req: Req, res: Res, binary: boolean): Promise<void> {
    const header = new RequestHeaderView(req.headers);
    const timeout = parseTimeout(header.get('connect-timeout-ms'), opt.maxTimeoutMs);
    const compression = compressionNegotiate(
      opt.acceptCompression,
      null,
      header.get('accept-encoding'),
      'accept-encoding',
    );
    const ctx = new UnaryContext(route, req, res, header, timeout.timeoutMs);
    let status = 200;
    let body: Uint8Array;
    let contentType = binary ? 'application/proto' : 'application/json';
    try {
      if (timeout.error) throw timeout.error;
      const bytes = await readBody(req, header.get('content-length'));
      route.serialization ??= createMethodSerializationLookup(route.method, opt.binaryOptions, opt.jsonOptions, opt);
      const input = route.serialization.getI(binary).parse(bytes);
      if (!tokenMatches(state, header.get('x-access-token'))) {
        throw new ConnectError('missing or wrong X-Access-Token', Code.Unauthenticated);
      }
      const output = create(route.method.output, (await route.impl(input, ctx)) as never);
      body = (route.serialization as MethodSerializationLookup<DescMessage, DescMessage>)
        .getO(binary)
        .serialize(output);
    } catch (e) {
      const error =
        e instanceof ConnectError ? e : new ConnectError('internal error', Code.Internal, undefined, undefined, e);
      status = codeToHttpStatus(error.code);
      contentType = 'application/json';
      if (!error.isWireError) mergeNonProtocolHeaders(ctx.responseHeader, error.metadata);
      body = errorToJsonBytes(error, opt.jsonOptions);
    } finally {
      ctx.finish();
    }
    const head: Record<string, string> = ctx.headersOut();
    head['content-type'] = contentType;
    if (compression.response && body.byteLength >= opt.compressMinBytes) {
      body = await compression.response.compress(body);
      head['content-encoding'] = compression.response.name;
    }
    head['content-length'] = String(body.byteLength);
    if (res.destroyed) return;
    res.writeHead(status, head);
    (res as { end(d: Uint8Array): void }).end(body);
  }

  /** The whole body; an unusual one (size differing from content-length, too large) through connect-es's reader for its errors. */
  function readBody(req: Req, lengthHint: string | null): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        chunks.push(c);
        size += c.length;
      });
      req.once('end', () => {
        if ((lengthHint === null || lengthHint === String(size)) && size <= opt.readMaxBytes) {
          resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks));
        } else readAllBytes(createAsyncIterable(chunks), opt.readMaxBytes, lengthHint).then(resolve, reject);
      });
      req.once('error', (e) => reject(ConnectError.from(e, Code.Aborted)));
    });
  }
}

/**
 * The HandlerContext of one unary call. envd's unary methods read request headers only, so the
 * signal (client gone, deadline) and the response headers are made on first use.
 */
class UnaryContext implements HandlerContext {
  readonly method: DescMethod;
  readonly service: DescService;
  readonly requestMethod = 'POST';
  readonly protocolName = 'connect';
  readonly url: string;
  readonly timeoutMs: () => number | undefined;
  #controller: AbortController | undefined;
  #deadline: NodeJS.Timeout | undefined;
  #onClose: (() => void) | undefined;
  #done = false;
  #responseHeader: Headers | undefined;
  #responseTrailer: Headers | undefined;
  #values: HandlerContext['values'] | undefined;

  constructor(
    route: Route,
    private readonly req: Req,
    private readonly res: Res,
    readonly requestHeader: Headers,
    private readonly timeout: number | undefined,
  ) {
    this.method = route.method;
    this.service = route.service;
    this.url = `http://${String(('authority' in req ? req.authority : req.headers.host) ?? 'envd')}${req.url ?? ''}`;
    const deadline = timeout === undefined ? undefined : Date.now() + timeout;
    this.timeoutMs = () => (deadline === undefined ? undefined : deadline - Date.now());
  }

  get signal(): AbortSignal {
    if (!this.#controller) {
      const c = new AbortController();
      this.#controller = c;
      if (this.#done) c.abort();
      else {
        if (this.timeout !== undefined) {
          const expire = () => c.abort(new ConnectError('the operation timed out', Code.DeadlineExceeded));
          if (this.timeout <= 0) expire();
          else this.#deadline = setTimeout(expire, this.timeout);
        }
        this.#onClose = () => c.abort();
        this.res.once('close', this.#onClose);
        this.req.once('error', this.#onClose);
      }
    }
    return this.#controller.signal;
  }

  get responseHeader(): Headers {
    this.#responseHeader ??= new Headers();
    return this.#responseHeader;
  }
  get responseTrailer(): Headers {
    this.#responseTrailer ??= new Headers();
    return this.#responseTrailer;
  }
  get values(): HandlerContext['values'] {
    this.#values ??= createContextValues();
    return this.#values;
  }

  /** The call is over: like connect-es, abort the signal (if anyone holds it) and drop the timers. */
  finish(): void {
    this.#done = true;
    if (this.#deadline) clearTimeout(this.#deadline);
    if (this.#onClose) {
      this.res.off('close', this.#onClose);
      this.req.off('error', this.#onClose);
    }
    this.#controller?.abort();
  }

  /** Response headers set by the implementation, and its trailers as `trailer-` headers (Connect unary). */
  headersOut(): Record<string, string> {
    const out: Record<string, string> = {};
    this.#responseHeader?.forEach((v, k) => {
      out[k] = v;
    });
    this.#responseTrailer?.forEach((v, k) => {
      out[`trailer-${k}`] = v;
    });
    return out;
  }
}
