// `wrenn files put|get|ls`: copy files into and out of a capsule (streamed, any size) and list
// directories.
import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Capsule } from '@wrenn/sdk';
import { bytes, CliError, connection, printJson, printTable, run } from './support.js';

const handle = (id: string) => Capsule.connect(id, { ...connection(), autoResume: false });

export const put = (id: string, local: string, remote: string, o: { user?: string }) =>
  run(async () => {
    let size: number;
    try {
      const st = statSync(local);
      if (!st.isFile())
        throw new CliError(
          `${local} is not a file (directories are not copied; archive them first: tar czf dir.tgz dir)`,
        );
      size = st.size;
    } catch (err) {
      if (err instanceof CliError) throw err;
      throw new CliError(
        `cannot read ${local}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`,
      );
    }
    const cap = await handle(id);
    const target = remote.endsWith('/') ? `${remote}${local.split('/').pop()}` : remote;
    const body = Readable.toWeb(createReadStream(local)) as ReadableStream<Uint8Array>;
    const r = await cap.files.write(target, body, o.user ? { user: o.user } : {});
    process.stderr.write(`${local} -> ${id}:${r.path} (${bytes(size)})\n`);
  });

export const get = (id: string, remote: string, local: string | undefined, o: { user?: string }) =>
  run(async () => {
    const cap = await handle(id);
    const stream = await cap.files.read(remote, { format: 'stream', ...(o.user ? { user: o.user } : {}) });
    const source = Readable.fromWeb(stream as import('node:stream/web').ReadableStream<Uint8Array>);
    if (local === undefined || local === '-') {
      await pipeline(source, process.stdout as unknown as Writable);
      return;
    }
    await pipeline(source, createWriteStream(local));
    process.stderr.write(`${id}:${remote} -> ${local}\n`);
  });

export const ls = (id: string, path: string | undefined, o: { json?: boolean; user?: string; depth?: string }) =>
  run(async () => {
    const cap = await handle(id);
    const depth = o.depth === undefined ? undefined : Number(o.depth);
    if (depth !== undefined && (!Number.isInteger(depth) || depth < 1 || depth > 16))
      throw new CliError(`--depth must be from 1 to 16, got "${o.depth}"`);
    const entries = await cap.files.list(path ?? '/', {
      ...(depth ? { depth } : {}),
      ...(o.user ? { user: o.user } : {}),
    });
    if (o.json) return printJson(entries.map((e) => ({ ...e, modifiedTime: e.modifiedTime?.toISOString() ?? null })));
    printTable(
      ['TYPE', 'SIZE', 'MODIFIED', 'NAME'],
      entries.map((e) => [
        e.type,
        e.type === 'dir' ? '-' : bytes(e.size),
        e.modifiedTime?.toISOString().slice(0, 19).replace('T', ' ') ?? '-',
        e.type === 'dir' ? `${e.name}/` : e.name,
      ]),
      `${path ?? '/'} is empty`,
    );
  });
