// A Connect client for a service implemented in this process (`wrenn up`'s own host agent): calls go
// straight to the implementation, with no HTTP/2 session, framing or serialization on loopback.
// It keeps what callers rely on from the wire (test/in-process-client.test.ts runs the same checks
// over HTTP/2): requests and responses are messages of their schema, created from the init shapes
// as a transport would; errors arrive as ConnectErrors (others as "internal error"); the call's
// signal and timeoutMs abort the handler's context and end the call (Canceled / DeadlineExceeded)
// even if the handler does not look at them; a consumer that stops reading a stream ends it.
import { create, type DescMessage, type DescMethod, type DescService, type MessageShape } from '@bufbuild/protobuf';
import {
  type CallOptions,
  type Client,
  Code,
  ConnectError,
  createHandlerContext,
  type HandlerContext,
  type ServiceImpl,
} from '@connectrpc/connect';

/** One call's handler context, with the caller's signal and deadline linked to it. */
class Call {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout | undefined;
  private readonly onCallerAbort: (() => void) | undefined;
  readonly ctx: HandlerContext;

  constructor(
    service: DescService,
    method: DescMethod,
    private readonly opts: CallOptions | undefined,
  ) {
    const { signal, timeoutMs } = opts ?? {};
    if (signal) {
      this.onCallerAbort = () => this.cancel(ConnectError.from(signal.reason, Code.Canceled));
      if (signal.aborted) this.onCallerAbort();
      else signal.addEventListener('abort', this.onCallerAbort, { once: true });
    }
    if (timeoutMs !== undefined)
      this.timer = setTimeout(
        () => this.cancel(new ConnectError('the operation timed out', Code.DeadlineExceeded)),
        timeoutMs,
      );
    const deadline = timeoutMs !== undefined ? Date.now() + timeoutMs : undefined;
    const ctx = createHandlerContext({
      service,
      method,
      protocolName: 'in-process',
      requestMethod: 'POST',
      url: `/${service.typeName}/${method.name}`,
      requestSignal: this.controller.signal,
      ...(opts?.headers ? { requestHeader: opts.headers } : {}),
    });
    this.ctx = { ...ctx, timeoutMs: () => (deadline === undefined ? undefined : deadline - Date.now()) };
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Ends the call early: the handler's context aborts with the reason. */
  cancel(reason: ConnectError): void {
    this.done();
    if (!this.controller.signal.aborted) this.controller.abort(reason);
  }

  /** The call is over (a normal end leaves the handler's context as it is, as on the wire). */
  done(): void {
    clearTimeout(this.timer);
    if (this.onCallerAbort) this.opts?.signal?.removeEventListener('abort', this.onCallerAbort);
  }
}

/** How an error reaches a caller over the wire: ConnectErrors as they are, anything else hidden as internal. */
function asWire(err: unknown): ConnectError {
  return err instanceof ConnectError
    ? err
    : new ConnectError('internal error', Code.Internal, undefined, undefined, err);
}

/** Settles with p, or rejects as soon as the call is cancelled (the caller gave up or the deadline passed). */
function untilCancelled<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(ConnectError.from(signal.reason, Code.Canceled));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(ConnectError.from(signal.reason, Code.Canceled));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(asWire(err));
      },
    );
  });
}

async function* requests(input: DescMessage, inits: AsyncIterable<unknown>): AsyncIterable<MessageShape<DescMessage>> {
  for await (const init of inits) yield create(input, init as never);
}

async function* responses(
  method: DescMethod,
  it: AsyncIterator<unknown>,
  call: Call,
): AsyncGenerator<MessageShape<DescMessage>> {
  let ended = false;
  try {
    for (;;) {
      const r = await untilCancelled(it.next(), call.signal);
      if (r.done) {
        ended = true;
        return;
      }
      yield create(method.output, r.value as never);
    }
  } finally {
    if (ended) call.done();
    else {
      // A consumer that stopped early, or a call that failed: the handler sees its context end.
      call.cancel(new ConnectError('the caller stopped reading', Code.Canceled));
      void it.return?.(undefined)?.catch(() => undefined);
    }
  }
}

/** A Client<S> whose calls run `impl` in this process. */
export function createInProcessClient<S extends DescService>(service: S, impl: ServiceImpl<S>): Client<S> {
  const client: Record<string, (input: unknown, opts?: CallOptions) => unknown> = {};
  for (const method of service.methods) {
    const fn = (impl as unknown as Record<string, (...args: unknown[]) => unknown>)[method.localName];
    if (typeof fn !== 'function') continue;
    const handler = fn.bind(impl);
    switch (method.methodKind) {
      case 'unary':
      case 'client_streaming':
        client[method.localName] = async (input: unknown, opts?: CallOptions) => {
          const call = new Call(service, method, opts);
          const req =
            method.methodKind === 'unary'
              ? create(method.input, input as never)
              : requests(method.input, input as AsyncIterable<unknown>);
          try {
            const out = await untilCancelled(
              Promise.resolve().then(() => handler(req, call.ctx)),
              call.signal,
            );
            return create(method.output, out as never);
          } finally {
            call.done();
          }
        };
        break;
      case 'server_streaming':
      case 'bidi_streaming':
        client[method.localName] = (input: unknown, opts?: CallOptions) => {
          const call = new Call(service, method, opts);
          const req =
            method.methodKind === 'server_streaming'
              ? create(method.input, input as never)
              : requests(method.input, input as AsyncIterable<unknown>);
          const it = (handler(req, call.ctx) as AsyncIterable<unknown>)[Symbol.asyncIterator]();
          return responses(method, it, call);
        };
        break;
    }
  }
  return client as unknown as Client<S>;
}
