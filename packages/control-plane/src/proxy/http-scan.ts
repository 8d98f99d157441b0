// Just enough HTTP/1.1 framing for the piped proxy path: finds message heads, reads the few header
// fields that decide routing and body length, and walks chunked bodies without copying them. The
// bytes themselves are forwarded as they came (heads are rebuilt only where the proxy must change
// them), so this never re-encodes a body.

/** Same limit as Node's HTTP server (--max-http-header-size default). */
export const MAX_HEAD_BYTES = 16 * 1024;

export interface Head {
  /** Request: method, target, version. Response: version, status code, reason. */
  start: [string, string, string];
  /** The head's text without its final CRLFCRLF. */
  text: string;
  /** Where the header lines begin in text (the CRLF that ends the start line). */
  fieldsAt: number;
  /** Only the fields the proxy reads (READ): lowercased names, trimmed values, each line's span in text. */
  names: string[];
  values: string[];
  from: number[];
  to: number[];
}

/** Fields that route, frame, upgrade or get rewritten; every other line passes through unread. */
const READ = new Set([
  'host',
  'e2b-sandbox-id',
  'e2b-sandbox-port',
  'content-length',
  'transfer-encoding',
  'connection',
  'upgrade',
  'location',
  'x-forwarded-for',
  'x-forwarded-host',
  'proxy-authorization',
  'proxy-connection',
  // A private capsule's traffic access token (checked by the proxy, then dropped).
  'e2b-traffic-access-token',
]);
// First letters of READ's names (lowercase char codes): most lines are skipped without a slice.
const READ_FIRST = new Set([...READ].map((n) => n.charCodeAt(0)));

/** Index just past the CRLFCRLF ending the head that starts at 0, or -1 while it is incomplete. */
export function headEnd(buf: Buffer): number {
  const i = buf.indexOf('\r\n\r\n', 0, 'latin1');
  return i < 0 ? -1 : i + 4;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Parses buf[0, end) as a head; a string is the reason it is malformed. */
export function parseHead(buf: Buffer, end: number, kind: 'request' | 'response'): Head | string {
  const text = buf.toString('latin1', 0, end - 4);
  let fieldsAt = text.indexOf('\r\n');
  if (fieldsAt < 0) fieldsAt = text.length;
  const a = text.indexOf(' ');
  const b = a < 0 || a > fieldsAt ? -1 : text.indexOf(' ', a + 1);
  if (a <= 0 || a > fieldsAt || (kind === 'request' && (b < 0 || b > fieldsAt))) return `malformed ${kind} line`;
  const start: [string, string, string] =
    b < 0 || b > fieldsAt
      ? [text.slice(0, a), text.slice(a + 1, fieldsAt), '']
      : [text.slice(0, a), text.slice(a + 1, b), text.slice(b + 1, fieldsAt)];
  const version = kind === 'request' ? start[2] : start[0];
  if (version !== 'HTTP/1.1' && version !== 'HTTP/1.0') return `unsupported HTTP version ${JSON.stringify(version)}`;
  if (kind === 'request' && (!TOKEN.test(start[0]) || start[1] === '' || start[1].includes(' ')))
    return 'malformed request line';
  const h: Head = { start, text, fieldsAt, names: [], values: [], from: [], to: [] };
  let ls = fieldsAt + 2;
  while (ls < text.length + 2 && fieldsAt < text.length) {
    let le = text.indexOf('\r\n', ls);
    if (le < 0) le = text.length;
    const c = text.indexOf(':', ls);
    const first = text.charCodeAt(ls);
    // No obsolete line folding and no space before the colon (both are smuggling vectors).
    if (
      c <= ls ||
      c > le ||
      first === 32 ||
      first === 9 ||
      text.charCodeAt(c - 1) === 32 ||
      text.charCodeAt(c - 1) === 9
    )
      return 'malformed header line';
    if (READ_FIRST.has(first | 0x20)) {
      const name = text.slice(ls, c).toLowerCase();
      if (READ.has(name)) {
        h.names.push(name);
        h.values.push(text.slice(c + 1, le).trim());
        h.from.push(ls);
        h.to.push(le);
      }
    }
    ls = le + 2;
  }
  return h;
}

export function field(h: Head, name: string): string | undefined {
  const i = h.names.indexOf(name);
  return i < 0 ? undefined : h.values[i];
}

function fieldAll(h: Head, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < h.names.length; i++) if (h.names[i] === name) out.push(h.values[i] ?? '');
  return out;
}

/** Whether a comma-separated field (Connection, Transfer-Encoding) holds a token. */
export function hasToken(h: Head, name: string, token: string): boolean {
  for (const v of fieldAll(h, name)) for (const t of v.split(',')) if (t.trim().toLowerCase() === token) return true;
  return false;
}

export type Body = { kind: 'none' } | { kind: 'length'; n: number } | { kind: 'chunked' } | { kind: 'close' };

const DIGITS = /^\d{1,15}$/;

function lengthOf(h: Head): number | string | undefined {
  const i = h.names.indexOf('content-length');
  if (i < 0) return undefined;
  // The usual case: one field with one number.
  const first = h.values[i] ?? '';
  if (h.names.indexOf('content-length', i + 1) < 0 && DIGITS.test(first)) return Number(first);
  const all = fieldAll(h, 'content-length');
  if (all.length === 0) return undefined;
  const vs = new Set(all.flatMap((v) => v.split(',').map((s) => s.trim())));
  const [v] = vs;
  if (vs.size !== 1 || v === undefined || !DIGITS.test(v)) return 'invalid Content-Length';
  return Number(v);
}

/** How the request's body is delimited (RFC 9112 section 6.3); a string means reject with 400. */
export function requestBody(h: Head): Body | string {
  const te = fieldAll(h, 'transfer-encoding');
  const cl = lengthOf(h);
  if (te.length > 0) {
    // Both, or a coding list not ending in chunked: the classic smuggling shapes; refuse them.
    if (cl !== undefined) return 'both Transfer-Encoding and Content-Length';
    const codings = te
      .join(',')
      .split(',')
      .map((s) => s.trim().toLowerCase());
    if (codings[codings.length - 1] !== 'chunked') return 'Transfer-Encoding must end with chunked';
    return { kind: 'chunked' };
  }
  if (typeof cl === 'string') return cl;
  return cl ? { kind: 'length', n: cl } : { kind: 'none' };
}

/** How a response's body is delimited, given the request's method. */
export function responseBody(h: Head, status: number, method: string): Body | string {
  if (method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200)) return { kind: 'none' };
  if (fieldAll(h, 'transfer-encoding').length > 0)
    return hasToken(h, 'transfer-encoding', 'chunked') ? { kind: 'chunked' } : { kind: 'close' };
  const cl = lengthOf(h);
  if (typeof cl === 'string') return cl;
  return cl === undefined ? { kind: 'close' } : cl === 0 ? { kind: 'none' } : { kind: 'length', n: cl };
}

enum C {
  Size,
  Ext,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  TrailerStart,
  Trailer,
  TrailerLf,
  FinalLf,
  Done,
}

/** Walks a chunked body (sizes, extensions, trailers) across any split of the bytes. */
export class ChunkedScanner {
  private state = C.Size;
  private size = 0;
  private digits = 0;

  get done(): boolean {
    return this.state === C.Done;
  }

  /** How many bytes of buf belong to the body (stops right after its end); -1 when malformed. */
  scan(buf: Buffer): number {
    let i = 0;
    while (i < buf.length && this.state !== C.Done) {
      if (this.state === C.Data) {
        const n = Math.min(this.size, buf.length - i);
        i += n;
        this.size -= n;
        if (this.size === 0) this.state = C.DataCr;
        continue;
      }
      const ch = buf[i++] ?? 0;
      switch (this.state) {
        case C.Size: {
          const d =
            ch >= 48 && ch <= 57 ? ch - 48 : ch >= 97 && ch <= 102 ? ch - 87 : ch >= 65 && ch <= 70 ? ch - 55 : -1;
          if (d >= 0) {
            if (++this.digits > 12) return -1;
            this.size = this.size * 16 + d;
          } else if (this.digits > 0 && (ch === 59 || ch === 32 || ch === 9)) this.state = C.Ext;
          else if (this.digits > 0 && ch === 13) this.state = C.SizeLf;
          else return -1;
          break;
        }
        case C.Ext:
          if (ch === 13) this.state = C.SizeLf;
          break;
        case C.SizeLf:
          if (ch !== 10) return -1;
          this.digits = 0;
          this.state = this.size === 0 ? C.TrailerStart : C.Data;
          break;
        case C.DataCr:
          if (ch !== 13) return -1;
          this.state = C.DataLf;
          break;
        case C.DataLf:
          if (ch !== 10) return -1;
          this.state = C.Size;
          break;
        case C.TrailerStart:
          this.state = ch === 13 ? C.FinalLf : C.Trailer;
          break;
        case C.Trailer:
          if (ch === 13) this.state = C.TrailerLf;
          break;
        case C.TrailerLf:
          if (ch !== 10) return -1;
          this.state = C.TrailerStart;
          break;
        case C.FinalLf:
          if (ch !== 10) return -1;
          this.state = C.Done;
          break;
      }
    }
    return i;
  }
}
