// connect-es reports a request body that is not valid protobuf as `internal` (HTTP 500); the
// client sent bad input, so envd answers `invalid_argument` (HTTP 400) as E2B's envd does. Only
// unary binary calls are affected: JSON parse errors are already invalid_argument. A 500 answer to
// such a call is held until its body is known, then passed on or rewritten.
import type { Req, Res } from './respond.js';

const PARSE_MARK = '"message":"parse binary:';

type Loose = {
  writeHead: (...a: unknown[]) => unknown;
  write: (...a: unknown[]) => boolean;
  end: (...a: unknown[]) => unknown;
};

export function withBinaryParseErrorsAsInvalid<T extends (req: Req, res: Res) => void>(handler: T): T {
  return ((req: Req, res: Res) => {
    if (req.headers['content-type'] !== 'application/proto') return handler(req, res);
    const r = res as unknown as Loose;
    const orig = { writeHead: r.writeHead.bind(r), write: r.write.bind(r), end: r.end.bind(r) };
    let held: { status: number; headers: Record<string, unknown>; chunks: Buffer[] } | undefined;
    r.writeHead = (status: unknown, ...rest: unknown[]) => {
      const headers = (rest.find((x) => typeof x === 'object' && x !== null) ?? {}) as Record<string, unknown>;
      if (status === 500 || held) {
        held = { status: status as number, headers, chunks: held?.chunks ?? [] };
        return r;
      }
      return orig.writeHead(status, ...rest);
    };
    r.write = (chunk: unknown, ...rest: unknown[]) => {
      if (!held) return orig.write(chunk, ...rest);
      held.chunks.push(Buffer.from(chunk as Uint8Array | string));
      const cb = rest.find((x) => typeof x === 'function') as (() => void) | undefined;
      if (cb) queueMicrotask(cb);
      return true;
    };
    r.end = (...args: unknown[]) => {
      if (!held) return orig.end(...args);
      const { status, headers, chunks } = held;
      held = undefined;
      if (typeof args[0] === 'string' || args[0] instanceof Uint8Array) chunks.push(Buffer.from(args[0]));
      let body = Buffer.concat(chunks).toString('utf8');
      let code = status;
      if (body.includes(PARSE_MARK)) {
        body = body.replace('"code":"internal"', '"code":"invalid_argument"');
        code = 400;
      }
      const out = { ...headers, 'content-length': Buffer.byteLength(body) };
      orig.writeHead(code, out);
      return orig.end(body, ...args.filter((a) => typeof a === 'function'));
    };
    return handler(req, res);
  }) as T;
}
