// A Connect client for a service implemented in this process (`wrenn up`'s own host agent): calls go
// straight to the implementation, with no HTTP/2 session, framing or serialization on loopback.
// It keeps what callers rely on from the wire: requests and responses are messages of their schema
// (created from the init shapes as a transport would), errors arrive as ConnectErrors, the call's
// signal and timeoutMs reach the handler's context and end the call (Canceled / DeadlineExceeded)
// even if the handler does not look at them, and a consumer that stops reading a stream ends it.
import { create, type DescMessage, type DescMethod, type DescService, type MessageShape } from '@bufbuild/protobuf';
import { Code, ConnectError, createHandlerContext, type CallOptions, type Client, type ServiceImpl } from '@connectrpc/connect';

type AnyFn = (...args: unknown[]) => unknown;

function contextFor(service: DescService, method: DescMethod, opts: CallOptions | undefined) {
  return createHandlerContext({
    service,
    method,
    protocolName: 'in-process',
    requestMethod: 'POST',
    url: `/${service.typeName}/${method.name}`,
    ...(opts?.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    ...(opts?.signal ? { requestSignal: opts.signal } : {}),
    ...(opts?.headers ? { requestHeader: opts.headers } : {}),
  });
}

/** Settles with p, or rejects as soon as the signal aborts (the caller gave up or the deadline passed). */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
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
        reject(ConnectError.from(err));
      },
    );
  });
}

async function* requests(input: DescMessage, inits: AsyncIterable<unknown>): AsyncIterable<MessageShape<DescMessage>> {
  for await (const init of inits) yield create(input, init as never);
}

async function* responses(method: DescMethod, it: AsyncIterator<unknown>, ctx: ReturnType<typeof createHandlerContext>): AsyncGenerator<MessageShape<DescMessage>> {
  try {
    for (;;) {
      const r = await untilAborted(it.next(), ctx.signal);
      if (r.done) return;
      yield create(method.output, r.value as never);
    }
  } finally {
    // A consumer that stops early, or a call that failed: the handler sees its context end.
    ctx.abort();
    void it.return?.(undefined)?.catch(() => undefined);
  }
}

/** A Client<S> whose calls run `impl` in this process. */
export function createInProcessClient<S extends DescService>(service: S, impl: ServiceImpl<S>): Client<S> {
  const client: Record<string, (input: unknown, opts?: CallOptions) => unknown> = {};
  for (const method of service.methods) {
    const fn = (impl as unknown as Record<string, AnyFn>)[method.localName];
    if (typeof fn !== 'function') continue;
    const handler = fn.bind(impl);
    switch (method.methodKind) {
      case 'unary':
      case 'client_streaming':
        client[method.localName] = async (input: unknown, opts?: CallOptions) => {
          const ctx = contextFor(service, method, opts);
          const req = method.methodKind === 'unary' ? create(method.input, input as never) : requests(method.input, input as AsyncIterable<unknown>);
          try {
            const out = await untilAborted(Promise.resolve().then(() => handler(req, ctx)), ctx.signal);
            return create(method.output, out as never);
          } finally {
            ctx.abort();
          }
        };
        break;
      case 'server_streaming':
      case 'bidi_streaming':
        client[method.localName] = (input: unknown, opts?: CallOptions) => {
          const ctx = contextFor(service, method, opts);
          const req = method.methodKind === 'server_streaming' ? create(method.input, input as never) : requests(method.input, input as AsyncIterable<unknown>);
          const it = (handler(req, ctx) as AsyncIterable<unknown>)[Symbol.asyncIterator]();
          return responses(method, it, ctx);
        };
        break;
    }
  }
  return client as unknown as Client<S>;
}
