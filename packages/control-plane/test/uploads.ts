// What the template tests share for uploads: a tar archive made in memory (the file sets and build
// contexts they send), a PUT that announces more bytes than it sends (the size limit must refuse
// it from the head alone), and a stored file set written straight to the database (for the GC
// tests). One copy instead of one per test file.
import { request } from 'node:http';
import { pack } from 'tar-stream';
import type { WrennDatabase } from '../src/db/index.js';

export interface TarEntry {
  name: string;
  body?: string | Buffer;
  /** tar-stream's entry type; default file. */
  type?: string;
  linkname?: string;
}

/** An uncompressed tar of `entries` (mode 0644), in order. */
export async function tarOf(entries: TarEntry[]): Promise<Buffer> {
  const p = pack();
  for (const e of entries)
    p.entry({ name: e.name, type: (e.type ?? 'file') as 'file', linkname: e.linkname, mode: 0o644 }, e.body ?? '');
  p.finalize();
  const parts: Buffer[] = [];
  for await (const b of p as AsyncIterable<Buffer>) parts.push(b);
  return Buffer.concat(parts);
}

/**
 * PUTs to `url` (plain http) with a Content-Length of `announced` and sends 1 KiB of it; resolves
 * with the status of the answer that comes before the rest (a 413 when the limit is applied to
 * the head). `at` sends it to another address than the URL's (a replica behind a shared link).
 */
export function putAnnouncing(url: string, announced: number, at?: { host: string; port: number }): Promise<number> {
  const u = new URL(url);
  return new Promise<number>((resolve, reject) => {
    const req = request(
      {
        host: at?.host ?? u.hostname,
        port: at?.port ?? Number(u.port),
        path: u.pathname + u.search,
        method: 'PUT',
        headers: { 'content-length': String(announced) },
        agent: false,
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
        req.destroy();
      },
    );
    req.on('error', reject);
    req.write(Buffer.alloc(1024));
  });
}

/**
 * A file set stored as file-sets.ts keeps one (its row, naming its upload's single chunk), last
 * used at `lastUsed`: what the GC tests age without waiting.
 */
export async function storeFileSet(
  db: WrennDatabase['db'],
  o: { teamId: string; hash: string; uploadId: string; data: Buffer; lastUsed: number },
): Promise<void> {
  await db
    .insertInto('template_file_sets')
    .values({
      team_id: o.teamId,
      hash: o.hash,
      upload_id: o.uploadId,
      bytes: o.data.length,
      chunks: 1,
      created_at: o.lastUsed,
      last_used_at: o.lastUsed,
    })
    .execute();
  await db.insertInto('template_file_chunks').values({ upload_id: o.uploadId, seq: 0, data: o.data }).execute();
}
