// Connection settings: explicit options win, then WRENN_API_KEY / WRENN_BASE_URL (Node only).

export const DEFAULT_BASE_URL = 'http://127.0.0.1:8000';

export interface ConnectionOptions {
  /** API key (`wrn_...`); default: WRENN_API_KEY. */
  apiKey?: string;
  /** Control plane URL; default: WRENN_BASE_URL, else http://127.0.0.1:8000. */
  baseUrl?: string;
  /** Per-request timeout for ordinary API calls in ms (default 60 000; 0 = none). */
  requestTimeoutMs?: number;
}

export interface ResolvedConnection {
  apiKey: string;
  baseUrl: string;
  requestTimeoutMs: number;
}

function env(name: string): string | undefined {
  const p = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  const v = p?.env?.[name];
  return v ? v : undefined;
}

export function resolveConnection(o: ConnectionOptions = {}): ResolvedConnection {
  const apiKey = o.apiKey ?? env('WRENN_API_KEY') ?? '';
  const baseUrl = (o.baseUrl ?? env('WRENN_BASE_URL') ?? DEFAULT_BASE_URL).replace(/\/+$/, '');
  try {
    const u = new URL(baseUrl);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme');
  } catch {
    throw new TypeError(`baseUrl must be an http(s) URL such as ${DEFAULT_BASE_URL}, got "${baseUrl}"`);
  }
  return { apiKey, baseUrl, requestTimeoutMs: o.requestTimeoutMs ?? 60_000 };
}
