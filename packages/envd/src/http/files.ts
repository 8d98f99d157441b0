// GET /files (download) and POST /files (multipart or octet-stream upload), as E2B's envd serves
// them. With an access token set, a request needs X-Access-Token or a valid signed URL.

import { close, createReadStream, fstat, read } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createGunzip, createGzip } from 'node:zlib';
import busboy from 'busboy';
import { inlineDisposition, sniff, typeByExtension } from '../filesystem/content-type.js';
import { errnoCode } from '../filesystem/errors.js';
import { compressible, identityAcceptable, negotiateEncoding } from '../filesystem/http-encoding.js';
import { metadataProblem } from '../filesystem/metadata.js';
import { PathError, resolvePath } from '../filesystem/paths.js';
import { type FileOperation, fileAccessProblem } from '../filesystem/signature.js';
import { statusOf, writeUploadedFile } from '../filesystem/upload.js';
import { O_NOCTTY, O_NONBLOCK, O_RDONLY, type UserFs, userFs } from '../filesystem/user-fs.js';
import type { EnvdState } from '../state.js';
import { lookupUser, UnknownUserError, type UserInfo } from '../users.js';
import { HttpError, type Req, type Res, sendError, sendJson } from './respond.js';
import { headerValue, type Route } from './router.js';

const READ_HWM = 1 << 20;
const fstatAsync = promisify(fstat);
const readAsync = promisify(read);
const closeAsync = promisify(close);
const SAMPLE_BYTES = 64 * 1024;

interface WriteInfo {
  path: string;
  name: string;
  type: 'file';
  metadata?: Record<string, string>;
}

interface FileRequest {
  user: UserInfo;
  /** The file system as the user sees it: every open, mkdir and xattr call is made as the user. */
  fs: UserFs;
  resolve(p: string): string;
}

function authorize(state: EnvdState, req: Req, url: URL, op: FileOperation): FileRequest {
  const problem = fileAccessProblem(state.accessToken, headerValue(req, 'x-access-token'), url.searchParams, op);
  if (problem) throw new HttpError(401, problem);
  const name = url.searchParams.get('username') ?? state.defaultUser;
  let user: UserInfo;
  try {
    user = lookupUser(name, state.etcDir);
  } catch (err) {
    if (err instanceof UnknownUserError) throw new HttpError(401, `error looking up user '${name}': ${err.message}`);
    throw err;
  }
  return {
    user,
    fs: userFs(user),
    resolve(p: string) {
      try {
        return resolvePath(p, user, state.defaultWorkdir);
      } catch (err) {
        if (err instanceof PathError) throw new HttpError(400, `error resolving path: ${err.message}`);
        throw err;
      }
    },
  };
}

function fail(err: unknown, what: string): HttpError {
  if (err instanceof HttpError) return err;
  return new HttpError(statusOf(err), `${what}: ${err instanceof Error ? err.message : String(err)}`);
}

/** Single `bytes=a-b` range of a file of `size` bytes; undefined when absent or unsupported, null when unsatisfiable. */
function parseRange(header: string | undefined, size: number): { start: number; end: number } | null | undefined {
  const m = header ? /^bytes=(\d*)-(\d*)$/.exec(header.trim()) : null;
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  let start: number;
  let end: number;
  if (m[1] === '') {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  return start > end || start >= size ? null : { start, end };
}

async function download(state: EnvdState, req: Req, res: Res, url: URL): Promise<void> {
  const fr = authorize(state, req, url, 'read');
  const target = fr.resolve(url.searchParams.get('path') ?? '');
  // Opened as the user, and everything below reads this fd: the kernel checks the object it serves.
  // O_NONBLOCK: a FIFO must not hold the open until a writer comes.
  let fd: number;
  try {
    fd = await fr.fs.open(target, O_RDONLY | O_NONBLOCK | O_NOCTTY);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR')
      throw new HttpError(404, `path '${target}' does not exist`);
    throw fail(err, `error opening file '${target}'`);
  }
  let handedOver = false;
  try {
    handedOver = await serveFd(fd, target, req, res);
  } finally {
    if (!handedOver) await closeAsync(fd).catch(() => undefined);
  }
}

/** Answers a download from the open fd; true when a stream took the fd over (and closes it). */
async function serveFd(fd: number, target: string, req: Req, res: Res): Promise<boolean> {
  const st = await fstatAsync(fd);
  if (st.isDirectory()) throw new HttpError(400, `path '${target}' is a directory`);
  if (!st.isFile()) throw new HttpError(400, `path '${target}' is not a regular file`);
  const acceptEncoding = headerValue(req, 'accept-encoding');
  let encoding = negotiateEncoding(acceptEncoding);
  if (!encoding) throw new HttpError(406, 'no acceptable encoding found, supported: [gzip]');
  const rangeHeader = headerValue(req, 'range');
  if (rangeHeader) {
    if (!identityAcceptable(acceptEncoding))
      throw new HttpError(406, 'identity encoding not acceptable for Range request');
    encoding = 'identity';
  }

  const head = Buffer.alloc(Math.min(SAMPLE_BYTES, st.size));
  if (head.length > 0) await readAsync(fd, head, 0, head.length, 0);
  // fetch clients (the e2b SDK among them) offer gzip on every request; gzip only pays for data
  // that compresses, so large incompressible files go out as identity whenever the client allows it.
  if (
    encoding === 'gzip' &&
    st.size >= SAMPLE_BYTES &&
    identityAcceptable(acceptEncoding) &&
    !(await compressible(head))
  ) {
    encoding = 'identity';
  }
  // A numeric fd stream rather than a FileHandle's: FileHandle streams cost more CPU per chunk in Node 20.
  const streamOf = (start: number, end?: number) =>
    createReadStream('', { fd, start, ...(end === undefined ? {} : { end }), highWaterMark: READ_HWM });
  res.setHeader('vary', 'Accept-Encoding');
  res.setHeader('content-disposition', inlineDisposition(path.basename(target)));
  res.setHeader('content-type', typeByExtension(target) ?? sniff(head.subarray(0, 512)));
  if (encoding === 'gzip') {
    res.setHeader('content-encoding', 'gzip');
    res.writeHead(200);
    // Level 1: clients (fetch) ask for gzip by default, so favour throughput over ratio.
    await pipeline(streamOf(0), createGzip({ level: 1, chunkSize: 1 << 16 }), res as NodeJS.WritableStream);
    return true;
  }
  res.setHeader('last-modified', st.mtime.toUTCString());
  res.setHeader('accept-ranges', 'bytes');
  const range = parseRange(rangeHeader, st.size);
  if (range === null) {
    res.setHeader('content-range', `bytes */${st.size}`);
    throw new HttpError(416, `range ${rangeHeader} not satisfiable for ${st.size} bytes`);
  }
  if (range) {
    res.setHeader('content-range', `bytes ${range.start}-${range.end}/${st.size}`);
    res.setHeader('content-length', range.end - range.start + 1);
    res.writeHead(206);
    await pipeline(streamOf(range.start, range.end), res as NodeJS.WritableStream);
    return true;
  }
  res.setHeader('content-length', st.size);
  res.writeHead(200);
  if (req.method === 'HEAD') {
    res.end();
    return false;
  }
  await pipeline(streamOf(0), res as NodeJS.WritableStream);
  return true;
}

function uploadMetadata(req: Req): Record<string, string> {
  const metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (!name.startsWith('x-metadata-') || value === undefined) continue;
    const key = name.slice('x-metadata-'.length);
    if (key) metadata[key] = Array.isArray(value) ? (value[0] ?? '') : value;
  }
  const problem = metadataProblem(metadata);
  if (problem) throw new HttpError(400, `invalid metadata: ${problem}`);
  return metadata;
}

function written(target: string, metadata: Record<string, string>): WriteInfo {
  const info: WriteInfo = { path: target, name: path.basename(target), type: 'file' };
  if (Object.keys(metadata).length > 0) info.metadata = metadata;
  return info;
}

function requestBody(req: Req): Readable {
  const enc = (headerValue(req, 'content-encoding') ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (enc === '' || enc === 'identity') return req as Readable;
  if (enc !== 'gzip') throw new HttpError(400, `unsupported Content-Encoding: ${enc}, supported: [gzip]`);
  const gunzip = createGunzip({ chunkSize: 1 << 18 });
  (req as Readable).pipe(gunzip);
  (req as Readable).on('error', (err) => gunzip.destroy(err));
  return gunzip;
}

async function uploadRaw(
  fr: FileRequest,
  body: Readable,
  url: URL,
  metadata: Record<string, string>,
): Promise<WriteInfo[]> {
  const p = url.searchParams.get('path');
  if (p === null) throw new HttpError(400, 'path query parameter is required for raw body upload');
  const target = fr.resolve(p);
  try {
    return [written(target, await writeUploadedFile(target, body, fr.fs, metadata, fr.user))];
  } catch (err) {
    throw fail(err, `error writing ${target}`);
  }
}

function uploadMultipart(
  fr: FileRequest,
  req: Req,
  body: Readable,
  url: URL,
  metadata: Record<string, string>,
): Promise<WriteInfo[]> {
  return new Promise((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = busboy({
        headers: { 'content-type': headerValue(req, 'content-type') ?? '' },
        preservePath: true,
        highWaterMark: READ_HWM,
        fileHwm: READ_HWM,
      });
    } catch (err) {
      reject(new HttpError(400, `error parsing multipart form: ${err instanceof Error ? err.message : String(err)}`));
      return;
    }
    const queryPath = url.searchParams.get('path');
    const results: WriteInfo[] = [];
    const seen = new Set<string>();
    let failure: HttpError | undefined;
    let work: Promise<void> = Promise.resolve();
    // Each part is written before the parser reads on (the file stream's backpressure).
    const writePart = (requested: string | undefined, stream: Readable) => {
      work = work.then(async () => {
        if (failure) {
          stream.resume();
          return;
        }
        try {
          if (requested === undefined) throw new HttpError(400, 'filename not found in Content-Disposition header');
          const target = fr.resolve(requested);
          if (seen.has(target)) {
            throw new HttpError(
              400,
              `you cannot upload multiple files to the same path '${target}' in one upload request, only the first specified file was uploaded`,
            );
          }
          seen.add(target);
          results.push(written(target, await writeUploadedFile(target, stream, fr.fs, metadata, fr.user)));
        } catch (err) {
          failure = fail(err, 'error writing file');
          stream.resume();
        }
      });
    };
    bb.on('file', (field, stream, info) => {
      if (field !== 'file' || failure) {
        stream.resume();
        return;
      }
      writePart(queryPath ?? info.filename, stream);
    });
    // A part named "file" without a filename (FormData.append('file', 'text')) is the file too, as
    // in E2B's envd; busboy hands such parts over whole, up to its 1 MiB field limit.
    bb.on('field', (field, value: string, info) => {
      if (field !== 'file' || failure) return;
      if (info.valueTruncated) {
        failure = new HttpError(400, 'a "file" form part without a filename is over 1 MiB: send it with a filename');
        return;
      }
      writePart(queryPath ?? undefined, Readable.from([Buffer.from(value)]));
    });
    bb.on('close', () => {
      void work.then(() => (failure ? reject(failure) : resolve(results)));
    });
    bb.on('error', (err: Error) => reject(new HttpError(400, `error reading form: ${err.message}`)));
    body.on('error', (err) => reject(new HttpError(400, `error reading body: ${err.message}`)));
    body.pipe(bb);
  });
}

async function upload(state: EnvdState, req: Req, res: Res, url: URL): Promise<void> {
  const fr = authorize(state, req, url, 'write');
  const metadata = uploadMetadata(req);
  const contentType = (headerValue(req, 'content-type') ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  const body = requestBody(req);
  let results: WriteInfo[];
  if (contentType === 'application/octet-stream') results = await uploadRaw(fr, body, url, metadata);
  else if (contentType.startsWith('multipart/')) results = await uploadMultipart(fr, req, body, url, metadata);
  else
    throw new HttpError(
      400,
      `unsupported content type: ${contentType || '(none)'}, expected multipart/form-data or application/octet-stream`,
    );
  sendJson(res, 200, results);
}

/** Sends an error and discards the rest of an unread upload body so the connection stays usable. */
function guarded(handler: (state: EnvdState, req: Req, res: Res, url: URL) => Promise<void>, state: EnvdState) {
  return async (req: Req, res: Res, url: URL) => {
    try {
      await handler(state, req, res, url);
    } catch (err) {
      if (!(req as Readable).readableEnded) (req as Readable).resume();
      if (res.headersSent) {
        res.destroy(err as Error);
        return;
      }
      const e = fail(err, 'request failed');
      sendError(res, e.status, e.message);
    }
  };
}

export function fileRoutes(state: EnvdState): Route[] {
  return [
    { method: 'GET', path: '/files', selfAuth: true, handler: guarded(download, state) },
    { method: 'POST', path: '/files', selfAuth: true, handler: guarded(upload, state) },
  ];
}
