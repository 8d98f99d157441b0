// filesystem.Filesystem: E2B's envd filesystem service (Stat, MakeDir, Move, ListDir, Remove,
// WatchDir and the polling watcher). Paths resolve against the requesting user's home; every call
// on the file system is made as the requesting user (user-fs.ts), so what is created belongs to
// that user and the kernel refuses what the user may not do, on the object actually used.

import path from 'node:path';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from '@connectrpc/connect';
import {
  EventType,
  type Filesystem,
  type FilesystemEventSchema,
  type WatchDirResponseSchema,
} from '@wrenn/protocol/gen/envd/filesystem_pb';
import { requestedUserName, resolveUser } from '../auth.js';
import { nodeCrypto } from '../node-crypto.js';
import type { EnvdState } from '../state.js';
import type { UserInfo } from '../users.js';
import { type EntryInit, entryFrom, entryInfo } from './entry.js';
import { errnoCode, toConnectError } from './errors.js';
import { METADATA_PREFIX } from './metadata.js';
import { refreshOwnerNames } from './owners.js';
import { ensureDirs, PathError, resolvePath } from './paths.js';
import { type FsEntry, type FsStat, type UserFs, userFs } from './user-fs.js';
import { DirWatcher, onNetworkMount, type WatchEvent } from './watcher.js';

type FsEvent = MessageInitShape<typeof FilesystemEventSchema>;
type WatchResponse = MessageInitShape<typeof WatchDirResponseSchema>;

const DEFAULT_KEEPALIVE_MS = 90_000;

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;

interface Requester {
  user: UserInfo;
  fs: UserFs;
  resolve(p: string): string;
}

function requester(state: EnvdState, ctx: HandlerContext): Requester {
  const user = resolveUser(state, requestedUserName(ctx.requestHeader.get('authorization')));
  refreshOwnerNames(state.etcDir);
  return {
    user,
    fs: userFs(user),
    resolve(p: string) {
      try {
        return resolvePath(p, user, state.defaultWorkdir);
      } catch (err) {
        if (err instanceof PathError) throw new ConnectError(err.message, Code.InvalidArgument);
        throw err;
      }
    },
  };
}

async function ensureDirsRpc(dir: string, r: Requester): Promise<void> {
  try {
    await ensureDirs(dir, r.fs);
  } catch (err) {
    if (err instanceof PathError) throw new ConnectError(err.message, Code.InvalidArgument);
    throw toConnectError(err, `create directory ${dir}`, r.user.name);
  }
}

/** Lists dir (already symlink-resolved) up to depth, pre-order by name, reporting paths under `shown`. */
async function walk(
  r: Requester,
  dir: string,
  shown: string,
  depth: number,
  etcDir: string,
  out: EntryInit[],
  top = true,
): Promise<void> {
  let entries: FsEntry[];
  try {
    // One native call per directory: names, lstat, symlink targets and metadata, as the user.
    entries = await r.fs.list(dir, METADATA_PREFIX);
  } catch (err) {
    // A subdirectory the user may not read is listed without its contents (the top one is an error).
    if (!top && errnoCode(err) === 'EACCES') return;
    throw toConnectError(err, `read directory ${dir}`, r.user.name);
  }
  entries.sort((a, b) =>
    (a.name as string) < (b.name as string) ? -1 : (a.name as string) > (b.name as string) ? 1 : 0,
  );
  for (const e of entries) {
    const name = e.name as string;
    const entry = entryFrom(path.join(dir, name), e, etcDir);
    entry.path = path.join(shown, name);
    out.push(entry);
    if (depth > 1 && (e.mode & S_IFMT) === S_IFDIR)
      await walk(r, path.join(dir, name), path.join(shown, name), depth - 1, etcDir, out, false);
  }
}

/** Validates a watch request's directory: exists (not_found), is a directory (invalid_argument), not a network mount. */
async function checkWatchable(r: Requester, p: string, allowNetworkMounts: boolean): Promise<void> {
  let st: FsStat;
  try {
    st = await r.fs.stat(p);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw new ConnectError(`path ${p} not found`, Code.NotFound);
    throw toConnectError(err, `stat ${p}`, r.user.name);
  }
  if ((st.mode & S_IFMT) !== S_IFDIR) throw new ConnectError(`path ${p} is not a directory`, Code.InvalidArgument);
  if (!allowNetworkMounts && (await onNetworkMount(p).catch(() => false))) {
    throw new ConnectError(
      `cannot watch path on network filesystem: ${p} (set allowNetworkMounts to watch it anyway)`,
      Code.InvalidArgument,
    );
  }
}

async function toFsEvents(events: WatchEvent[], includeEntry: boolean, etcDir: string, fs: UserFs): Promise<FsEvent[]> {
  return Promise.all(
    events.map(async (e) => {
      const ev: FsEvent = { name: e.name, type: e.type };
      // Remove and rename name a path whose entry is gone: never attach whatever is there now.
      if (includeEntry && (e.type === EventType.CREATE || e.type === EventType.WRITE || e.type === EventType.CHMOD)) {
        ev.entry = await entryInfo(e.absPath, etcDir, fs).catch(() => undefined);
      }
      return ev;
    }),
  );
}

interface PollingWatcher {
  watcher: DirWatcher;
  events: FsEvent[];
  error?: ConnectError;
}

export function filesystemService(state: EnvdState): Partial<ServiceImpl<typeof Filesystem>> {
  const watchers = new Map<string, PollingWatcher>();

  return {
    async stat(req, ctx) {
      const r = requester(state, ctx);
      return { entry: await entryInfo(r.resolve(req.path), state.etcDir, r.fs) };
    },

    async makeDir(req, ctx) {
      const r = requester(state, ctx);
      const dir = r.resolve(req.path);
      const st = await r.fs.stat(dir).catch((err) => {
        if (errnoCode(err) === 'ENOENT') return undefined;
        throw toConnectError(err, `create directory ${dir}`, r.user.name);
      });
      if (st && (st.mode & S_IFMT) === S_IFDIR)
        throw new ConnectError(`directory already exists: ${dir}`, Code.AlreadyExists);
      if (st) throw new ConnectError(`path already exists but it is not a directory: ${dir}`, Code.InvalidArgument);
      await ensureDirsRpc(dir, r);
      return { entry: await entryInfo(dir, state.etcDir, r.fs) };
    },

    async move(req, ctx) {
      const r = requester(state, ctx);
      const source = r.resolve(req.source);
      const destination = r.resolve(req.destination);
      try {
        await r.fs.stat(source, false);
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') throw new ConnectError(`source file not found: ${source}`, Code.NotFound);
        throw toConnectError(err, `move ${source}`, r.user.name);
      }
      await ensureDirsRpc(path.dirname(destination), r);
      try {
        await r.fs.rename(source, destination);
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') throw new ConnectError(`source file not found: ${source}`, Code.NotFound);
        throw toConnectError(err, `move ${source} to ${destination}`, r.user.name);
      }
      return { entry: await entryInfo(destination, state.etcDir, r.fs) };
    },

    async listDir(req, ctx) {
      const r = requester(state, ctx);
      const depth = req.depth === 0 ? 1 : req.depth;
      const requested = r.resolve(req.path);
      let resolved: string;
      try {
        resolved = await r.fs.realpath(requested);
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') throw new ConnectError(`path not found: ${requested}`, Code.NotFound);
        if (errnoCode(err) === 'ELOOP')
          throw new ConnectError(`cyclic symlink at ${requested}`, Code.FailedPrecondition);
        throw toConnectError(err, `resolve ${requested}`, r.user.name);
      }
      const st = await r.fs.stat(resolved).catch((err) => {
        throw toConnectError(err, `stat ${resolved}`, r.user.name);
      });
      if ((st.mode & S_IFMT) !== S_IFDIR)
        throw new ConnectError(`path is not a directory: ${requested}`, Code.InvalidArgument);
      const entries: EntryInit[] = [];
      await walk(r, resolved, requested, depth, state.etcDir, entries);
      return { entries };
    },

    async remove(req, ctx) {
      const r = requester(state, ctx);
      const target = r.resolve(req.path);
      try {
        await r.fs.removeTree(target);
      } catch (err) {
        throw toConnectError(err, `remove ${target}`, r.user.name);
      }
      return {};
    },

    async *watchDir(req, ctx): AsyncGenerator<WatchResponse> {
      const r = requester(state, ctx);
      const dir = r.resolve(req.path);
      await checkWatchable(r, dir, req.allowNetworkMounts);

      const queue: WatchEvent[] = [];
      let failure: Error | undefined;
      let wake: (() => void) | undefined;
      const notify = () => {
        wake?.();
        wake = undefined;
      };
      const watcher = new DirWatcher(
        dir,
        req.recursive,
        r.fs,
        (events) => {
          queue.push(...events);
          notify();
        },
        (err) => {
          failure = err;
          notify();
        },
      );
      try {
        await watcher.start();
      } catch (err) {
        watcher.close();
        throw toConnectError(err, `cannot watch ${dir}`);
      }
      const headerSec = Number(ctx.requestHeader.get('keepalive-ping-interval'));
      const keepaliveMs = Number.isFinite(headerSec) && headerSec > 0 ? headerSec * 1000 : DEFAULT_KEEPALIVE_MS;
      const onAbort = () => notify();
      ctx.signal.addEventListener('abort', onAbort);
      try {
        yield { event: { case: 'start', value: {} } };
        while (!ctx.signal.aborted) {
          if (failure) throw new ConnectError(`watcher error: ${failure.message}`, Code.Internal);
          if (queue.length === 0) {
            let timer: NodeJS.Timeout | undefined;
            const timedOut = await new Promise<boolean>((resolve) => {
              wake = () => resolve(false);
              timer = setTimeout(() => resolve(true), keepaliveMs);
            });
            clearTimeout(timer);
            if (timedOut) yield { event: { case: 'keepalive', value: {} } };
            continue;
          }
          const batch = queue.splice(0, queue.length);
          for (const ev of await toFsEvents(batch, req.includeEntry, state.etcDir, r.fs)) {
            yield { event: { case: 'filesystem', value: ev } };
          }
        }
      } finally {
        ctx.signal.removeEventListener('abort', onAbort);
        watcher.close();
      }
    },

    async createWatcher(req, ctx) {
      const r = requester(state, ctx);
      const dir = r.resolve(req.path);
      await checkWatchable(r, dir, req.allowNetworkMounts);
      const id = `w${nodeCrypto().randomBytes(8).toString('hex')}`;
      const entry: PollingWatcher = { events: [], watcher: undefined as unknown as DirWatcher };
      // Entry lookups are async: chain them so events keep their order.
      let chain = Promise.resolve();
      entry.watcher = new DirWatcher(
        dir,
        req.recursive,
        r.fs,
        (events) => {
          chain = chain
            .then(() => toFsEvents(events, req.includeEntry, state.etcDir, r.fs))
            .then((evs) => {
              entry.events.push(...evs);
            });
        },
        (err) => {
          entry.error = new ConnectError(`watcher error: ${err.message}`, Code.Internal);
        },
      );
      try {
        await entry.watcher.start();
      } catch (err) {
        entry.watcher.close();
        throw toConnectError(err, `cannot watch ${dir}`);
      }
      watchers.set(id, entry);
      return { watcherId: id };
    },

    async getWatcherEvents(req) {
      const w = watchers.get(req.watcherId);
      if (!w) throw new ConnectError(`watcher with id ${req.watcherId} not found`, Code.NotFound);
      if (w.error) throw w.error;
      return { events: w.events.splice(0, w.events.length) };
    },

    async removeWatcher(req) {
      const w = watchers.get(req.watcherId);
      if (!w) throw new ConnectError(`watcher with id ${req.watcherId} not found`, Code.NotFound);
      w.watcher.close();
      watchers.delete(req.watcherId);
      return {};
    },
  };
}
