// One small WebSocket interface over the browser's global WebSocket and, in Node (which has no
// usable global one before 22 and none that can send headers), the `ws` package loaded lazily.
import { ConnectionError, errorFromResponse, type WrennError } from './errors.js';

export type SocketData = string | Uint8Array;

export interface Socket {
  send(data: SocketData): void;
  close(code?: number, reason?: string): void;
  /** Messages: text frames as strings, binary frames as bytes. */
  onMessage(fn: (data: SocketData) => void): void;
  onClose(fn: (code: number, reason: string) => void): void;
  readonly isOpen: boolean;
}

const isNode =
  typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node === 'string';

export async function openSocket(url: string, apiKey: string): Promise<Socket> {
  return isNode ? openNodeSocket(url, apiKey) : openBrowserSocket(url, apiKey);
}

async function openNodeSocket(url: string, apiKey: string): Promise<Socket> {
  // Loaded with require: importing ws's ESM wrapper costs several times more start-up (it goes
  // through the CommonJS interop for every file), which `wrenn exec` would pay on each run. The
  // variable module names keep browser bundlers from pulling node:module or ws in.
  const nodeModule = 'node:module';
  const { createRequire } = (await import(nodeModule)) as typeof import('node:module');
  const WS = createRequire(import.meta.url)('ws') as typeof import('ws').default;
  const ws = new WS(url, { headers: { 'x-api-key': apiKey }, perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString('utf8')));
      res.on('end', () => {
        let parsed: unknown = null;
        try {
          parsed = JSON.parse(body);
        } catch {
          // plain text
        }
        reject(errorFromResponse(res.statusCode ?? 0, parsed, body || `WebSocket refused with HTTP ${res.statusCode}`));
      });
      res.on('error', reject);
    });
    ws.once('error', (err) => reject(connectionError(url, err)));
  });
  return {
    send: (d) => ws.send(d, { binary: typeof d !== 'string' }),
    close: (code, reason) => ws.close(code ?? 1000, reason),
    onMessage: (fn) =>
      ws.on('message', (data, isBinary) => {
        const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
        fn(isBinary ? new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength) : buf.toString('utf8'));
      }),
    onClose: (fn) => ws.on('close', (code, reason) => fn(code, reason.toString('utf8'))),
    get isOpen() {
      return ws.readyState === WS.OPEN;
    },
  };
}

async function openBrowserSocket(url: string, apiKey: string): Promise<Socket> {
  // Browsers cannot set headers on a WebSocket: the key goes in the query.
  const u = new URL(url);
  u.searchParams.set('api_key', apiKey);
  const ws = new WebSocket(u.toString());
  ws.binaryType = 'arraybuffer';
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener('open', () => resolve(), { once: true });
    ws.addEventListener(
      'error',
      () => reject(connectionError(url, new Error('WebSocket failed (the server refused it or is unreachable)'))),
      { once: true },
    );
  });
  return {
    send: (d) => ws.send(d),
    close: (code, reason) => ws.close(code ?? 1000, reason),
    onMessage: (fn) =>
      ws.addEventListener('message', (ev: MessageEvent) =>
        fn(typeof ev.data === 'string' ? ev.data : new Uint8Array(ev.data as ArrayBuffer)),
      ),
    onClose: (fn) => ws.addEventListener('close', (ev: CloseEvent) => fn(ev.code, ev.reason)),
    get isOpen() {
      return ws.readyState === WebSocket.OPEN;
    },
  };
}

function connectionError(url: string, err: unknown): WrennError {
  return new ConnectionError(
    `cannot open WebSocket ${url.replace(/\?.*$/, '')}: ${(err as Error)?.message ?? String(err)}`,
    { code: 'unreachable', cause: err },
  );
}
