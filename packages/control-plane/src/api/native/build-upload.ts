// Reads a multipart/form-data template build upload: fields `name`, `build_args` (JSON) and
// `dockerfile` (a text field or a file part), the context as a `context` tar (gzip detected by its magic bytes) and/or file
// parts whose filename is the path inside the context. Limits are enforced while streaming.
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import busboy from 'busboy';
import { extract } from 'tar-stream';
import {
  type BuildContext,
  BuildContextError,
  CONTEXT_LIMITS,
  type ContextFile,
  makeContext,
} from '../../templates/build-context.js';
import { DOCKERFILE_LIMITS } from '../../templates/dockerfile.js';

export interface MultipartBuild {
  name: string | undefined;
  dockerfile: string | undefined;
  context: BuildContext;
  /** The `build_args` field: a JSON object of ARG name -> value (checked by the builder). */
  buildArgs?: Record<string, string> | undefined;
}

function parseBuildArgs(value: string): Record<string, string> {
  try {
    return JSON.parse(value) as Record<string, string>;
  } catch {
    throw new BuildContextError(
      `field 'build_args' must be a JSON object of ARG name -> value, like {"VERSION":"1.2"}`,
    );
  }
}

async function untar(buf: Buffer, into: [string, ContextFile][]): Promise<void> {
  const data =
    buf.length > 2 && buf[0] === 0x1f && buf[1] === 0x8b
      ? gunzipSync(buf, { maxOutputLength: CONTEXT_LIMITS.maxBytes + 1 })
      : buf;
  const ex = extract();
  const done = new Promise<void>((resolve, reject) => {
    ex.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => {
        chunks.push(c as Buffer);
      });
      stream.on('end', () => {
        // Directories are implied by their files; links and devices have no place in a context.
        if (header.type === 'file' || header.type === 'contiguous-file') {
          into.push([header.name ?? '', { data: Buffer.concat(chunks), mode: header.mode ?? 0o644 }]);
        }
        next();
      });
      stream.on('error', reject);
    });
    ex.on('finish', resolve);
    ex.on('error', (err: Error) => reject(new BuildContextError(`the context tar could not be read: ${err.message}`)));
  });
  Readable.from([data]).pipe(ex);
  await done;
}

export function readMultipartBuild(req: IncomingMessage, headers: IncomingHttpHeaders): Promise<MultipartBuild> {
  return new Promise((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = busboy({
        headers,
        preservePath: true,
        limits: {
          fileSize: CONTEXT_LIMITS.maxBytes,
          files: CONTEXT_LIMITS.maxFiles,
          fields: 10,
          fieldSize: DOCKERFILE_LIMITS.maxBytes,
        },
      });
    } catch (err) {
      reject(
        new BuildContextError(
          `the multipart body could not be read: ${err instanceof Error ? err.message : String(err)}`,
        ),
      );
      return;
    }
    const out: { name?: string; dockerfile?: string; buildArgs?: Record<string, string> } = {};
    const files: [string, ContextFile][] = [];
    const tars: Buffer[] = [];
    let total = 0;
    let failed: Error | null = null;
    // The first problem answers at once; the rest of the body is read and dropped so the
    // connection stays usable.
    const fail = (err: Error) => {
      if (failed) return;
      failed = err;
      req.unpipe(bb);
      req.resume();
      reject(err);
    };
    bb.on('field', (field, value, info) => {
      if (info.valueTruncated)
        return fail(new BuildContextError(`field '${field}' is longer than ${DOCKERFILE_LIMITS.maxBytes} bytes`));
      if (field === 'name') out.name = value;
      else if (field === 'dockerfile') out.dockerfile = value;
      else if (field === 'build_args') {
        try {
          out.buildArgs = parseBuildArgs(value);
        } catch (err) {
          fail(err as Error);
        }
      } else
        fail(
          new BuildContextError(`unknown field '${field}' (expected name, dockerfile, build_args, context and files)`),
        );
    });
    bb.on('file', (field, stream, info) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => {
        total += c.length;
        if (total > CONTEXT_LIMITS.maxBytes)
          fail(new BuildContextError(`the build context is larger than ${CONTEXT_LIMITS.maxBytes} bytes`, true));
        else chunks.push(c);
      });
      stream.on('limit', () =>
        fail(new BuildContextError(`the build context is larger than ${CONTEXT_LIMITS.maxBytes} bytes`, true)),
      );
      stream.on('end', () => {
        const data = Buffer.concat(chunks);
        if (field === 'dockerfile') out.dockerfile = data.toString('utf8');
        else if (field === 'context') tars.push(data);
        else if (field === 'files' || field === 'file') files.push([info.filename ?? '', { data, mode: 0o644 }]);
        else fail(new BuildContextError(`unknown file part '${field}' (expected dockerfile, context or files)`));
      });
    });
    bb.on('filesLimit', () => fail(new BuildContextError(`more than ${CONTEXT_LIMITS.maxFiles} files`)));
    bb.on('error', (err: Error) => fail(new BuildContextError(`the multipart body could not be read: ${err.message}`)));
    bb.on('close', () => {
      void (async () => {
        if (failed) return;
        for (const t of tars) await untar(t, files);
        resolve({ name: out.name, dockerfile: out.dockerfile, context: makeContext(files), buildArgs: out.buildArgs });
      })().catch(reject);
    });
    req.pipe(bb);
  });
}
