// The REST client: JSON in and out, the API key on every call, typed errors for error answers.
import { type ConnectionOptions, type ResolvedConnection, resolveConnection } from './config.js';
import { AuthenticationError, ConnectionError, errorFromResponse, TimeoutError, WrennError } from './errors.js';
import { openSocket, type Socket } from './websocket.js';

export type Query = Record<string, string | number | boolean | string[] | undefined>;

export interface RequestOptions {
  query?: Query;
  /** JSON body. */
  json?: unknown;
  /** Raw body (uploads). */
  body?: BodyInit;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Overrides the client's request timeout (0 = none). */
  timeoutMs?: number;
}

export class ApiClient {
  readonly conn: ResolvedConnection;
  constructor(opts: ConnectionOptions = {}) {
    this.conn = resolveConnection(opts);
  }

  get baseUrl(): string {
    return this.conn.baseUrl;
  }

  url(path: string, query?: Query): string {
    const u = new URL(this.conn.baseUrl + path);
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v === undefined) continue;
      if (Array.isArray(v)) for (const item of v) u.searchParams.append(k, item);
      else u.searchParams.set(k, String(v));
    }
    return u.toString();
  }

  private requireKey(): string {
    if (!this.conn.apiKey) {
      throw new AuthenticationError(
        'no API key: pass { apiKey } or set WRENN_API_KEY (the key `wrenn up` printed, or run `wrenn login`)',
        {
          status: 401,
          code: 'unauthenticated',
        },
      );
    }
    return this.conn.apiKey;
  }

  /** Sends a request and returns the raw response after checking its status. */
  async fetch(method: string, path: string, o: RequestOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { 'x-api-key': this.requireKey(), ...o.headers };
    let body: BodyInit | undefined = o.body;
    if (o.json !== undefined) {
      body = JSON.stringify(o.json);
      headers['content-type'] = 'application/json';
    }
    const timeoutMs = o.timeoutMs ?? this.conn.requestTimeoutMs;
    const signals: AbortSignal[] = [];
    if (o.signal) signals.push(o.signal);
    if (timeoutMs > 0) signals.push(AbortSignal.timeout(timeoutMs));
    const signal = signals.length === 0 ? undefined : signals.length === 1 ? signals[0] : AbortSignal.any(signals);
    const init: RequestInit & { duplex?: string } = { method, headers };
    if (body !== undefined) init.body = body;
    if (signal) init.signal = signal;
    // Streams as bodies need half-duplex mode in Node and in browsers that support it.
    if (body instanceof ReadableStream) init.duplex = 'half';
    let res: Response;
    try {
      res = await fetch(this.url(path, o.query), init);
    } catch (err) {
      throw this.transportError(err, method, path, timeoutMs);
    }
    if (!res.ok) {
      const text = await res.text().catch(() => '');
      let parsed: unknown = null;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {
        // not JSON: use the text as the message
      }
      throw errorFromResponse(
        res.status,
        parsed,
        text.slice(0, 300) || `${method} ${path} failed with HTTP ${res.status}`,
      );
    }
    return res;
  }

  /** Sends a request and parses the JSON answer (undefined for 204). */
  async json<T>(method: string, path: string, o: RequestOptions = {}): Promise<T> {
    const res = await this.fetch(method, path, o);
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  transportError(err: unknown, method: string, path: string, timeoutMs: number): WrennError {
    if (err instanceof WrennError) return err;
    const name = (err as { name?: string })?.name;
    if (name === 'TimeoutError')
      return new TimeoutError(`${method} ${path} got no answer within ${timeoutMs} ms`, {
        code: 'timeout',
        cause: err,
      });
    if (name === 'AbortError') return new WrennError(`${method} ${path} was aborted`, { code: 'aborted', cause: err });
    return new ConnectionError(
      `cannot reach the Wrenn API at ${this.conn.baseUrl} (${(err as Error)?.message ?? String(err)}); is \`wrenn up\` running, and is WRENN_BASE_URL right?`,
      { code: 'unreachable', cause: err },
    );
  }

  /** Opens a WebSocket to an API path, authenticated with the key. */
  socket(path: string, query?: Query): Promise<Socket> {
    const key = this.requireKey();
    const url = this.url(path, query).replace(/^http/, 'ws');
    return openSocket(url, key);
  }
}

export type { ConnectionOptions };
