// A direct path for `POST /process.Process/Start` over the Connect protocol (HTTP/1.1 and h2c).
// Why: running a command is envd's hottest call, and connect-es's generic server machinery
// (universal request/response conversion, async-iterable pipelines, linked AbortSignals, header
// copies, one socket write per envelope) cost more per call than the rest of the RPC. This path
// decodes the request and writes the envelopes itself, but calls the same service implementation
// (process/service.ts `start`) and connect-es's own serializers, end-stream and error encoding,
// timeout parsing and compression negotiation, so clients see the same bytes, codes and messages.
// Order of checks as connect-es: access token, then protocol errors (compression, timeout), then the
// body, then the implementation. What it does not take (other paths, a query string, other content
// types or methods) goes to the Connect router unchanged.
// Tests: packages/envd/test/start-fast-path.test.ts (fast path against the router, both encodings,
// HTTP/1.1 and h2c, errors, timeouts, disconnects); process.test.ts and e2b-commands.test.ts drive it.
import { create, isMessage } from '@bufbuild/protobuf';
import { Code, ConnectError, createContextValues, type HandlerContext, type ServiceImpl } from '@connectrpc/connect';
import {
  type Compression,
  compressionNegotiate,
  createAsyncIterable,
  createMethodSerializationLookup,
  envelopeCompress,
  pipe,
  transformDecompressEnvelope,
  transformParseEnvelope,
  transformSplitEnvelope,
  validateUniversalHandlerOptions,
} from '@connectrpc/connect/protocol';
import { createEndStreamSerialization, endStreamFlag, parseTimeout } from '@connectrpc/connect/protocol-connect';
import { compressionBrotli, compressionGzip } from '@connectrpc/connect-node';
import { Process, type StartRequest } from '@wrenn/protocol/gen/envd/process_pb';
import { tokenMatches } from '../auth.js';
import type { Req, Res } from '../http/respond.js';
import type { EnvdState } from '../state.js';
import { RequestHeaderView } from './request-header-view.js';

export const START_PATH = '/process.Process/Start';
const CONTENT_TYPES: Record<string, boolean> = { 'application/connect+proto': true, 'application/connect+json': false };
/** Output batched within one tick is written at once; above this it is written at once (backpressure). */
const BATCH_BYTES = 16 * 1024;

/** Calls served by this path (tests check that the path was taken). */
export const startFastPathStats = { calls: 0 };

type StartImpl = NonNullable<Partial<ServiceImpl<typeof Process>>['start']>;

/**
 * Returns a handler that serves a Start call and returns true, or returns false (without touching
 * the request) when the call is for the Connect router.
 * Same options as server.ts gives connectNodeAdapter: gzip and br, connect-es defaults otherwise.
 */
export function createStartFastPath(state: EnvdState, start: StartImpl): (req: Req, res: Res) => boolean {
  const opt = validateUniversalHandlerOptions({ acceptCompression: [compressionGzip, compressionBrotli] });
  const method = Process.method.start;
  const serialization = createMethodSerializationLookup(method, opt.binaryOptions, opt.jsonOptions, opt);
  const endStream = createEndStreamSerialization(opt.jsonOptions);

  return function startFastPath(req, res) {
    if (req.url !== START_PATH || req.method !== 'POST') return false;
    const binary = CONTENT_TYPES[req.headers['content-type'] ?? ''];
    if (binary === undefined) return false;
    startFastPathStats.calls++;
    void serveStart(req, res, binary);
    return true;
  };

  async function serveStart(req: Req, res: Res, binary: boolean): Promise<void> {
    const raw = req.headers;
    const header = new RequestHeaderView(raw);
    const timeout = parseTimeout(header.get('connect-timeout-ms'), opt.maxTimeoutMs);
    const compression = compressionNegotiate(
      opt.acceptCompression,
      header.get('connect-content-encoding'),
      header.get('connect-accept-encoding'),
      'connect-accept-encoding',
    );
    const out = new EnvelopeWriter(res, binary, compression.response, opt.compressMinBytes);

    // The call's signal: the client going away, or the deadline (same reason as connect-es gives).
    const abort = new AbortController();
    let deadline: NodeJS.Timeout | undefined;
    const expire = () => abort.abort(new ConnectError('the operation timed out', Code.DeadlineExceeded));
    if (timeout.timeoutMs !== undefined) {
      if (timeout.timeoutMs <= 0) expire();
      else deadline = setTimeout(expire, timeout.timeoutMs);
    }
    let done = false;
    const onClose = () => {
      if (!done) abort.abort();
    };
    res.once('close', onClose);
    req.once('error', onClose);

    let error: unknown;
    try {
      if (!tokenMatches(state, header.get('x-access-token'))) {
        throw new ConnectError('missing or wrong X-Access-Token', Code.Unauthenticated);
      }
      if (compression.error) throw compression.error;
      if (timeout.error) throw timeout.error;
      const input = await readStartRequest(req, binary, compression.request);
      const ctx = handlerContext(req, header, abort.signal, timeout.timeoutMs);
      const it = start(input, ctx)[Symbol.asyncIterator]();
      try {
        for (;;) {
          const r = await it.next();
          if (r.done) break;
          const message = isMessage(r.value, method.output) ? r.value : create(method.output, r.value);
          if (!out.message(serialization.getO(binary).serialize(message))) await out.drained();
        }
      } finally {
        await it.return?.();
      }
    } catch (e) {
      error = e;
    } finally {
      done = true;
      if (deadline) clearTimeout(deadline);
      res.off('close', onClose);
      req.off('error', onClose);
    }
    // A handler that ends quietly once the deadline aborted it still ends the call with the
    // deadline's error, as connect-es's router does.
    if (error === undefined && abort.signal.aborted && abort.signal.reason instanceof ConnectError)
      error = abort.signal.reason;
    const end: { metadata: Headers; error?: ConnectError } = { metadata: new Headers() };
    if (error instanceof ConnectError) end.error = error;
    else if (error !== undefined)
      end.error = new ConnectError('internal error', Code.Internal, undefined, undefined, error);
    out.end(endStream.serialize(end));
  }

  /** The one request message: the common case (one plain envelope) directly, others through connect-es's transforms. */
  async function readStartRequest(req: Req, binary: boolean, decompress: Compression | null): Promise<StartRequest> {
    const body = await readAll(req);
    const parser = serialization.getI(binary);
    if (
      !decompress &&
      body.length >= 5 &&
      body[0] === 0 &&
      body.readUInt32BE(1) === body.length - 5 &&
      body.length - 5 <= opt.readMaxBytes
    ) {
      return parser.parse(body.subarray(5));
    }
    const messages = pipe(
      createAsyncIterable([new Uint8Array(body.buffer, body.byteOffset, body.byteLength)]),
      transformSplitEnvelope(opt.readMaxBytes),
      transformDecompressEnvelope(decompress, opt.readMaxBytes),
      transformParseEnvelope(parser, endStreamFlag),
    )[Symbol.asyncIterator]();
    const first = await messages.next();
    if (first.done === true)
      throw new ConnectError('protocol error: missing input message for server-streaming method', Code.Unimplemented);
    const second = await messages.next();
    if (second.done !== true)
      throw new ConnectError(
        'protocol error: received extra input message for server-streaming method',
        Code.Unimplemented,
      );
    return first.value;
  }

  function handlerContext(
    req: Req,
    requestHeader: Headers,
    signal: AbortSignal,
    timeoutMs: number | undefined,
  ): HandlerContext {
    const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
    let responseHeader: Headers | undefined;
    let responseTrailer: Headers | undefined;
    let values: HandlerContext['values'] | undefined;
    return {
      method,
      service: Process,
      requestMethod: 'POST',
      protocolName: 'connect',
      url: `http://${String(('authority' in req ? req.authority : req.headers.host) ?? 'envd')}${START_PATH}`,
      requestHeader,
      signal,
      timeoutMs: () => (deadline === undefined ? undefined : deadline - Date.now()),
      // Start sets no response headers or trailers; these exist for the interface's sake.
      get responseHeader() {
        responseHeader ??= new Headers();
        return responseHeader;
      },
      get responseTrailer() {
        responseTrailer ??= new Headers();
        return responseTrailer;
      },
      get values() {
        values ??= createContextValues();
        return values;
      },
    };
  }
}

function readAll(req: Req): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.once('end', () => resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)));
    req.once('error', (e) => reject(ConnectError.from(e, Code.Aborted)));
    req.once('aborted', () => reject(new ConnectError('the client closed the request', Code.Aborted)));
  });
}

/**
 * Writes envelopes to the response: the head with the first one, then envelopes that become ready
 * in the same tick in one write (the end event, the end-of-stream and the chunk terminator of a short
 * command go out as one packet instead of three).
 */
class EnvelopeWriter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private scheduled = false;
  private blocked = false;
  private compressing: Promise<void> | undefined;

  constructor(
    private readonly res: Res,
    binary: boolean,
    private readonly compression: Compression | null,
    private readonly compressMinBytes: number,
  ) {
    this.head = { 'content-type': binary ? 'application/connect+proto' : 'application/connect+json' };
    if (compression) this.head['connect-content-encoding'] = compression.name;
  }

  private readonly head: Record<string, string>;

  /** Queues one message; false when the caller must wait for drained() before the next one. */
  message(data: Uint8Array): boolean {
    if (this.compression && data.byteLength >= this.compressMinBytes) {
      // Large output: compressed as connect-es does; the caller waits, so the order stays.
      this.compressing = envelopeCompress({ flags: 0, data }, this.compression, this.compressMinBytes).then((env) => {
        this.compressing = undefined;
        this.push(env.flags, env.data, true);
      });
      return false;
    }
    this.push(0, data, false);
    return !this.blocked;
  }

  private push(flags: number, data: Uint8Array, now: boolean): void {
    this.pending.push(envelope(flags, data));
    this.pendingBytes += data.byteLength + 5;
    if (now || this.pendingBytes >= BATCH_BYTES) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      process.nextTick(() => this.flush());
    }
  }

  private flush(): void {
    this.scheduled = false;
    if (this.pending.length === 0 || this.res.destroyed) return;
    const data = this.take();
    if (!this.res.headersSent) this.res.writeHead(200, this.head);
    this.blocked = !(this.res as { write(d: Buffer): boolean }).write(data);
  }

  private take(): Buffer {
    const data = this.pending.length === 1 ? (this.pending[0] as Buffer) : Buffer.concat(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    return data;
  }

  /** Resolves once queued output is handed to the socket and the socket is not over its high-water mark (or the client is gone). */
  async drained(): Promise<void> {
    if (this.compressing) await this.compressing;
    this.flush();
    if (!this.blocked || this.res.destroyed) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.res.off('drain', done);
        this.res.off('close', done);
        resolve();
      };
      this.res.once('drain', done);
      this.res.once('close', done);
    });
    this.blocked = false;
  }

  /** The end-of-stream envelope and the end of the response, with whatever is still queued. */
  end(endStream: Uint8Array): void {
    this.pending.push(envelope(endStreamFlag, endStream));
    if (this.res.destroyed) return;
    if (!this.res.headersSent) this.res.writeHead(200, this.head);
    (this.res as { end(d: Buffer): void }).end(this.take());
  }
}

function envelope(flags: number, data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(data.byteLength + 5);
  out[0] = flags;
  out.writeUInt32BE(data.byteLength, 1);
  out.set(data, 5);
  return out;
}
