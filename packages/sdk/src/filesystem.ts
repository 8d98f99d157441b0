// Files of a capsule: streamed download and upload (text, bytes, streams, many files), listing,
// directories, remove, rename, stat and watching a directory.

import { errorFromResponse, NotFoundError, WrennError } from './errors.js';
import type { ApiClient } from './http.js';
import { type EntryInfo, type EntryJson, entryInfo } from './types.js';

export type WriteData = string | Uint8Array | ArrayBuffer | Blob | ReadableStream<Uint8Array>;

export interface WriteEntry {
  path: string;
  data: WriteData;
}

export interface WriteInfo {
  path: string;
  bytesWritten: number;
  entry: EntryInfo;
}

export interface FilesystemEvent {
  /** Path relative to the watched directory. */
  name: string;
  type: 'create' | 'write' | 'remove' | 'rename' | 'chmod' | string;
}

export interface WatchHandle {
  /** Stops watching. */
  stop(): Promise<void>;
}

type UserOpt = { user?: string };

export class Filesystem {
  /** @internal */
  constructor(
    private readonly api: ApiClient,
    private readonly capsuleId: string,
  ) {}

  private path(suffix: string): string {
    return `/v1/capsules/${encodeURIComponent(this.capsuleId)}${suffix}`;
  }

  /** Reads a file as text (default), bytes, or a stream of bytes. */
  read(path: string, opts?: { format?: 'text' } & UserOpt): Promise<string>;
  read(path: string, opts: { format: 'bytes' } & UserOpt): Promise<Uint8Array>;
  read(path: string, opts: { format: 'stream' } & UserOpt): Promise<ReadableStream<Uint8Array>>;
  async read(
    path: string,
    opts: { format?: 'text' | 'bytes' | 'stream' } & UserOpt = {},
  ): Promise<string | Uint8Array | ReadableStream<Uint8Array>> {
    const res = await this.api.fetch('GET', this.path('/files'), { query: { path, user: opts.user }, timeoutMs: 0 });
    if (opts.format === 'stream') {
      if (!res.body) return new ReadableStream({ start: (c) => c.close() });
      return res.body;
    }
    if (opts.format === 'bytes') return new Uint8Array(await res.arrayBuffer());
    return res.text();
  }

  /** Writes one file (parents are created), or many: write([{ path, data }, ...]). */
  write(path: string, data: WriteData, opts?: UserOpt): Promise<WriteInfo>;
  write(entries: WriteEntry[], opts?: UserOpt): Promise<WriteInfo[]>;
  async write(a: string | WriteEntry[], b?: WriteData | UserOpt, c?: UserOpt): Promise<WriteInfo | WriteInfo[]> {
    if (Array.isArray(a)) {
      const opts = (b as UserOpt | undefined) ?? {};
      const out: WriteInfo[] = [];
      // One at a time: each upload is a stream; running them in parallel gains little and costs memory.
      for (const e of a) out.push(await this.writeOne(e.path, e.data, opts));
      return out;
    }
    if (b === undefined)
      throw new TypeError('files.write(path, data) needs data: a string, bytes, a Blob or a ReadableStream');
    return this.writeOne(a, b as WriteData, c ?? {});
  }

  private async writeOne(path: string, data: WriteData, opts: UserOpt): Promise<WriteInfo> {
    if (typeof path !== 'string' || !path) throw new TypeError('files.write needs a path');
    const body: BodyInit = typeof data === 'string' ? data : (data as BodyInit);
    const r = await this.api.json<{ path: string; bytes_written: number; entry: EntryJson }>(
      'PUT',
      this.path('/files'),
      {
        query: { path, user: opts.user },
        body,
        headers: { 'content-type': 'application/octet-stream' },
        timeoutMs: 0,
      },
    );
    return { path: r.path, bytesWritten: r.bytes_written, entry: entryInfo(r.entry) };
  }

  /** Entries of a directory (depth 1 by default). */
  async list(path: string, opts: { depth?: number } & UserOpt = {}): Promise<EntryInfo[]> {
    const r = await this.api.json<{ entries: EntryJson[] }>('GET', this.path('/files/list'), {
      query: { path, depth: opts.depth, user: opts.user },
    });
    return r.entries.map(entryInfo);
  }

  /** Makes a directory and its parents. Returns false when it already existed (as E2B does). */
  async makeDir(path: string, opts: UserOpt = {}): Promise<boolean> {
    try {
      await this.api.json('POST', this.path('/files/mkdir'), {
        json: { path, ...(opts.user ? { user: opts.user } : {}) },
      });
      return true;
    } catch (err) {
      if (err instanceof WrennError && err.code === 'already_exists') return false;
      throw err;
    }
  }

  /** Removes a file or a directory tree. */
  async remove(path: string, opts: UserOpt = {}): Promise<void> {
    await this.api.json('DELETE', this.path('/files'), { query: { path, user: opts.user } });
  }

  /** Moves or renames a file or directory. */
  async rename(oldPath: string, newPath: string, opts: UserOpt = {}): Promise<EntryInfo> {
    const r = await this.api.json<{ entry: EntryJson }>('POST', this.path('/files/move'), {
      json: { from: oldPath, to: newPath, ...(opts.user ? { user: opts.user } : {}) },
    });
    return entryInfo(r.entry);
  }

  /** Information about one path; throws NotFoundError when it does not exist. */
  async getInfo(path: string, opts: UserOpt = {}): Promise<EntryInfo> {
    const r = await this.api.json<{ entry: EntryJson }>('GET', this.path('/files/stat'), {
      query: { path, user: opts.user },
    });
    return entryInfo(r.entry);
  }

  async exists(path: string, opts: UserOpt = {}): Promise<boolean> {
    try {
      await this.getInfo(path, opts);
      return true;
    } catch (err) {
      if (err instanceof NotFoundError && !/capsule/i.test(err.message)) return false;
      throw err;
    }
  }

  /** Calls `onEvent` for every change under a directory until stop(). */
  async watchDir(
    path: string,
    onEvent: (e: FilesystemEvent) => void,
    opts: { recursive?: boolean; onExit?: (err?: Error) => void } & UserOpt = {},
  ): Promise<WatchHandle> {
    const socket = await this.api.socket(this.path('/files/watch'), {
      path,
      recursive: opts.recursive ? 'true' : undefined,
      user: opts.user,
    });
    let stopped = false;
    await new Promise<void>((resolve, reject) => {
      let started = false;
      socket.onMessage((d) => {
        if (typeof d !== 'string') return;
        const m = JSON.parse(d) as {
          type: string;
          name?: string;
          kind?: string;
          error?: { code: string; message: string };
        };
        if (m.type === 'start') {
          started = true;
          resolve();
        } else if (m.type === 'event') onEvent({ name: m.name ?? '', type: m.kind ?? 'unknown' });
        else if (m.type === 'error' && m.error) {
          const err = errorFromResponse(
            m.error.code === 'not_found' ? 404 : m.error.code === 'invalid_argument' ? 400 : 500,
            { error: m.error },
            m.error.message,
          );
          if (!started) reject(err);
          else opts.onExit?.(err);
        }
      });
      socket.onClose((code, reason) => {
        if (!started)
          reject(new WrennError(`watching ${path} did not start (${code} ${reason})`, { code: 'disconnected' }));
        else if (!stopped) opts.onExit?.();
      });
    });
    return {
      async stop() {
        stopped = true;
        socket.close(1000, 'stopped');
      },
    };
  }
}
