// Directory watcher with E2B's event kinds (CREATE, WRITE, REMOVE, RENAME, CHMOD) on top of Node's
// fs.watch. fs.watch is inotify underneath but only says "rename" or "change", so each directory
// keeps a snapshot of its entries (inode, mode, owner, mtime) and every event is classified by
// comparing the entry's new lstat with it; a "rename" that loses an inode which reappears under
// another name in the same batch is a RENAME. Recursive watching adds one fs.watch per directory
// (Node 20 has no recursive fs.watch on Linux) and reports entries of directories that appear.
// Directories are opened, read and stat'ed as the requesting user (user-fs.ts); the inotify watch
// is put on the directory that user opened (through /proc/self/fd), not on whatever the path
// names a moment later.
import { close, existsSync, type FSWatcher, watch } from 'node:fs';
import path from 'node:path';
import { EventType } from '@wrenn/protocol/gen/envd/filesystem_pb';
import { O_DIRECTORY, O_RDONLY, type UserFs } from './user-fs.js';

export interface WatchEvent {
  /** Path relative to the watched directory. */
  name: string;
  type: EventType;
  absPath: string;
}

interface Snap {
  ino: bigint;
  isDir: boolean;
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: bigint;
  size: bigint;
}

interface Raw {
  dir: string;
  kind: 'rename' | 'change';
  name: string;
}

async function snapOf(fs: UserFs, p: string): Promise<Snap | null> {
  try {
    const st = await fs.stat(p, false);
    return {
      ino: BigInt(st.ino),
      isDir: (st.mode & 0o170000) === 0o040000,
      mode: st.mode,
      uid: st.uid,
      gid: st.gid,
      mtimeNs: BigInt(st.mtimeSec) * 1_000_000_000n + BigInt(st.mtimeNsec),
      size: BigInt(st.size),
    };
  } catch {
    return null;
  }
}

let procFds: boolean | undefined;
/**
 * Watches the directory open at fd when /proc is there (the exact object), else its path. libuv
 * names events about the watched directory itself by the watched path's last part: "." here, which
 * no entry can be called (the path fallback gives the directory's own name, handled in process()).
 */
function watchOpened(
  fd: number,
  dir: string,
  listener: (kind: string, name: string | Buffer | null) => void,
): FSWatcher {
  procFds ??= existsSync('/proc/self/fd');
  return watch(procFds ? `/proc/self/fd/${fd}/.` : dir, { persistent: false }, listener);
}

const SCAN_PARALLEL = 64;
const GHOST = -1n; // an entry that appeared and vanished before it could be stat'ed

export class DirWatcher {
  private readonly dirs = new Map<string, { watcher: FSWatcher; entries: Map<string, Snap> }>();
  private pending: Raw[] = [];
  private flushScheduled = false;
  private chain: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    readonly root: string,
    readonly recursive: boolean,
    private readonly fs: UserFs,
    private readonly emit: (events: WatchEvent[]) => void,
    private readonly fail: (err: Error) => void,
  ) {}

  /** Watches root (and its subdirectories when recursive); resolves once every watch is in place. */
  async start(): Promise<void> {
    await this.addDir(this.root, false);
  }

  close(): void {
    this.closed = true;
    for (const d of this.dirs.values()) d.watcher.close();
    this.dirs.clear();
  }

  /** Starts watching dir, snapshots it, and returns the created events when `announce`. */
  private async addDir(dir: string, announce: boolean): Promise<WatchEvent[]> {
    if (this.closed || this.dirs.has(dir)) return [];
    let watcher: FSWatcher;
    try {
      // Reading the directory needs what inotify needs: read permission, checked as the user.
      const fd = await this.fs.open(dir, O_RDONLY | O_DIRECTORY);
      try {
        if (this.closed || this.dirs.has(dir)) return [];
        watcher = watchOpened(fd, dir, (kind, name) => {
          if (name && name !== '.') this.push({ dir, kind: kind as Raw['kind'], name: String(name) });
        });
      } finally {
        close(fd, () => undefined);
      }
    } catch (err) {
      if (dir === this.root) throw err;
      return []; // vanished meanwhile, or not the user's to read
    }
    watcher.on('error', (err) => {
      if (dir === this.root && !this.closed) this.fail(err);
    });
    const entries = new Map<string, Snap>();
    this.dirs.set(dir, { watcher, entries });
    const out: WatchEvent[] = [];
    let names: string[] = [];
    try {
      names = await this.fs.readdir(dir);
    } catch (err) {
      if (dir === this.root) throw err;
    }
    names.sort();
    // lstat in parallel slices (large trees), then recurse in name order.
    const snaps: (Snap | null)[] = [];
    for (let i = 0; i < names.length; i += SCAN_PARALLEL) {
      snaps.push(
        ...(await Promise.all(names.slice(i, i + SCAN_PARALLEL).map((n) => snapOf(this.fs, path.join(dir, n))))),
      );
    }
    for (let i = 0; i < names.length; i++) {
      const s = snaps[i];
      if (!s) continue;
      const abs = path.join(dir, names[i] as string);
      entries.set(names[i] as string, s);
      if (announce) out.push(this.event(abs, EventType.CREATE));
      if (s.isDir && this.recursive) out.push(...(await this.addDir(abs, announce)));
    }
    return out;
  }

  private removeDir(dir: string): void {
    for (const [d, w] of this.dirs) {
      if (d === dir || d.startsWith(`${dir}/`)) {
        w.watcher.close();
        this.dirs.delete(d);
      }
    }
  }

  private event(absPath: string, type: EventType): WatchEvent {
    return { name: path.relative(this.root, absPath), type, absPath };
  }

  private push(raw: Raw): void {
    if (this.closed) return;
    this.pending.push(raw);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // Events of one inotify read arrive synchronously; handle them as one batch.
    setImmediate(() => {
      this.flushScheduled = false;
      const batch = this.pending;
      this.pending = [];
      this.chain = this.chain
        .then(() => this.process(batch))
        .catch((err: Error) => {
          if (!this.closed) this.fail(err);
        });
    });
  }

  private async process(batch: Raw[]): Promise<void> {
    const nows = await Promise.all(batch.map((r) => snapOf(this.fs, path.join(r.dir, r.name))));
    type Out = WatchEvent | { gone: true; absPath: string; ino: bigint; resolved?: EventType };
    const out: Out[] = [];
    const createdInos = new Set<bigint>();
    for (let i = 0; i < batch.length; i++) {
      const raw = batch[i] as Raw;
      const d = this.dirs.get(raw.dir);
      if (!d) continue;
      const abs = path.join(raw.dir, raw.name);
      const prev = d.entries.get(raw.name);
      // Re-stat entries seen earlier in this batch: the shared result is the state after all of them.
      const now = nows[i] ?? null;
      if (!prev && raw.name === path.basename(raw.dir) && !now) continue; // event about the watched dir itself
      if (raw.kind === 'rename') {
        if (!prev) {
          out.push(this.event(abs, EventType.CREATE));
          if (now) {
            d.entries.set(raw.name, now);
            createdInos.add(now.ino);
            if (now.isDir && this.recursive) out.push(...(await this.addDir(abs, true)));
          } else {
            d.entries.set(raw.name, { ino: GHOST, isDir: false, mode: 0, uid: 0, gid: 0, mtimeNs: 0n, size: 0n });
          }
        } else if (!now) {
          d.entries.delete(raw.name);
          if (prev.isDir) this.removeDir(abs);
          out.push({ gone: true, absPath: abs, ino: prev.ino });
        } else if (now.ino !== prev.ino) {
          // Replaced by another entry (moved over it): E2B reports a create of the name.
          d.entries.set(raw.name, now);
          createdInos.add(now.ino);
          out.push(this.event(abs, EventType.CREATE));
          if (now.isDir && this.recursive) out.push(...(await this.addDir(abs, true)));
        }
      } else {
        if (!now) continue;
        if (!prev) {
          d.entries.set(raw.name, now);
          out.push(this.event(abs, EventType.WRITE));
          continue;
        }
        const attrs = now.mode !== prev.mode || now.uid !== prev.uid || now.gid !== prev.gid;
        const content = now.mtimeNs !== prev.mtimeNs || now.size !== prev.size;
        d.entries.set(raw.name, now);
        out.push(this.event(abs, attrs && !content ? EventType.CHMOD : EventType.WRITE));
      }
    }
    const events: WatchEvent[] = [];
    for (const o of out) {
      if ('gone' in o) {
        const renamed = o.ino !== GHOST && createdInos.has(o.ino);
        events.push(this.event(o.absPath, renamed ? EventType.RENAME : EventType.REMOVE));
      } else {
        events.push(o);
      }
    }
    if (events.length > 0 && !this.closed) this.emit(events);
  }
}

const NETWORK_FS = new Set([0x6969, 0xff534d42, 0x517b, 0xfe534d42, 0x65735546]);

/** True when p is on NFS, CIFS/SMB or FUSE (E2B refuses to watch those unless asked). */
export async function onNetworkMount(p: string): Promise<boolean> {
  const { statfs } = await import('node:fs/promises');
  const st = await statfs(p);
  return NETWORK_FS.has(Number(st.type) >>> 0);
}
