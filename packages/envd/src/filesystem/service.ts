// filesystem.Filesystem: E2B's envd filesystem service (Stat, MakeDir, Move, ListDir, Remove,
// WatchDir and the polling watcher). Paths resolve against the requesting user's home; what is
// created belongs to that user.

import type { Stats } from 'node:fs';
import { lstat, readdir, realpath, rename, rm, stat } from 'node:fs/promises';
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
import type { EnvdState } from '../state.js';
import type { UserInfo } from '../users.js';
import { checkCreate, checkRemoveTree, checkUnlink } from './access.js';
import { type EntryInit, entryInfo } from './entry.js';
import { errnoCode, toConnectError } from './errors.js';
import { refreshOwnerNames } from './owners.js';
import { ensureDirs, PathError, resolvePath } from './paths.js';
import { DirWatcher, onNetworkMount, type WatchEvent } from './watcher.js';
import { nodeCrypto } from '../node-crypto.js';

type FsEvent = MessageInitShape<typeof FilesystemEventSchema>;
type WatchResponse = MessageInitShape<typeof WatchDirResponseSchema>;

const DEFAULT_KEEPALIVE_MS = 90_000;
const LIST_PARALLEL = 32;

interface Requester {
  user: UserInfo;
  resolve(p: string): string;
}

function requester(state: EnvdState, ctx: HandlerContext): Requester {
  const user = resolveUser(state, requestedUserName(ctx.requestHeader.get('authorization')));
  refreshOwnerNames(state.etcDir);
  return {
    user,
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

async function ensureDirsRpc(dir: string, user: UserInfo): Promise<void> {
  try {
    await ensureDirs(dir, user.uid, user.gid);
  } catch (err) {
    if (err instanceof PathError) throw new ConnectError(err.message, Code.InvalidArgument);
    throw toConnectError(err, `cannot create directory ${dir}`);
  }
}

/** Lists dir (already symlink-resolved) up to depth, pre-order by name, reporting paths under `shown`. */
async function walk(dir: string, shown: string, depth: number, etcDir: string, out: EntryInit[]): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    throw toConnectError(err, `cannot read directory ${dir}`);
  }
  names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  // Entry lookups run LIST_PARALLEL at a time; output keeps name order.
  for (let i = 0; i < names.length; i += LIST_PARALLEL) {
    const slice = names.slice(i, i + LIST_PARALLEL);
    const infos = await Promise.all(
      slice.map((name) =>
        entryInfo(path.join(dir, name), etcDir).catch((err) => {
          if (err instanceof ConnectError && err.code === Code.NotFound) return undefined; // vanished meanwhile
          throw err;
        }),
      ),
    );
    for (let j = 0; j < slice.length; j++) {
      const entry = infos[j];
      const name = slice[j] as string;
      if (!entry) continue;
      entry.path = path.join(shown, name);
      out.push(entry);
      if (depth > 1) {
        const st = await lstat(path.join(dir, name)).catch(() => undefined);
        if (st?.isDirectory()) await walk(path.join(dir, name), path.join(shown, name), depth - 1, etcDir, out);
      }
    }
  }
}

/** Validates a watch request's directory: exists (not_found), is a directory (invalid_argument), not a network mount. */
async function checkWatchable(p: string, allowNetworkMounts: boolean): Promise<void> {
  let st: Stats;
  try {
    st = await stat(p);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw new ConnectError(`path ${p} not found`, Code.NotFound);
    throw toConnectError(err, `cannot stat ${p}`);
  }
  if (!st.isDirectory()) throw new ConnectError(`path ${p} is not a directory`, Code.InvalidArgument);
  if (!allowNetworkMounts && (await onNetworkMount(p).catch(() => false))) {
    throw new ConnectError(
      `cannot watch path on network filesystem: ${p} (set allowNetworkMounts to watch it anyway)`,
      Code.InvalidArgument,
    );
  }
}

async function toFsEvents(events: WatchEvent[], includeEntry: boolean, etcDir: string): Promise<FsEvent[]> {
  return Promise.all(
    events.map(async (e) => {
      const ev: FsEvent = { name: e.name, type: e.type };
      // Remove and rename name a path whose entry is gone: never attach whatever is there now.
      if (includeEntry && (e.type === EventType.CREATE || e.type === EventType.WRITE || e.type === EventType.CHMOD)) {
        ev.entry = await entryInfo(e.absPath, etcDir).catch(() => undefined);
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
      return { entry: await entryInfo(r.resolve(req.path), state.etcDir) };
    },

    async makeDir(req, ctx) {
      const r = requester(state, ctx);
      const dir = r.resolve(req.path);
      const st = await stat(dir).catch((err) => {
        if (errnoCode(err) === 'ENOENT') return undefined;
        throw toConnectError(err, `cannot stat ${dir}`);
      });
      if (st?.isDirectory()) throw new ConnectError(`directory already exists: ${dir}`, Code.AlreadyExists);
      if (st) throw new ConnectError(`path already exists but it is not a directory: ${dir}`, Code.InvalidArgument);
      await checkCreate(dir, r.user, `create directory ${dir}`);
      await ensureDirsRpc(dir, r.user);
      return { entry: await entryInfo(dir, state.etcDir) };
    },

    async move(req, ctx) {
      const r = requester(state, ctx);
      const source = r.resolve(req.source);
      const destination = r.resolve(req.destination);
      try {
        await lstat(source);
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') throw new ConnectError(`source file not found: ${source}`, Code.NotFound);
        throw toConnectError(err, `cannot stat ${source}`);
      }
      await checkUnlink(source, r.user, `move ${source}`);
      await checkCreate(destination, r.user, `move to ${destination}`);
      await ensureDirsRpc(path.dirname(destination), r.user);
      try {
        await rename(source, destination);
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') throw new ConnectError(`source file not found: ${source}`, Code.NotFound);
        throw toConnectError(err, `cannot move ${source} to ${destination}`);
      }
      return { entry: await entryInfo(destination, state.etcDir) };
    },

    async listDir(req, ctx) {
      const r = requester(state, ctx);
      const depth = req.depth === 0 ? 1 : req.depth;
      const requested = r.resolve(req.path);
      let resolved: string;
      try {
        resolved = await realpath(requested);
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') throw new ConnectError(`path not found: ${requested}`, Code.NotFound);
        if (errnoCode(err) === 'ELOOP')
          throw new ConnectError(`cyclic symlink at ${requested}`, Code.FailedPrecondition);
        throw toConnectError(err, `cannot resolve ${requested}`);
      }
      const st = await stat(resolved).catch((err) => {
        throw toConnectError(err, `cannot stat ${resolved}`);
      });
      if (!st.isDirectory()) throw new ConnectError(`path is not a directory: ${requested}`, Code.InvalidArgument);
      const entries: EntryInit[] = [];
      await walk(resolved, requested, depth, state.etcDir, entries);
      return { entries };
    },

    async remove(req, ctx) {
      const r = requester(state, ctx);
      const target = r.resolve(req.path);
      const exists = await lstat(target).then(
        () => true,
        () => false,
      );
      if (exists) await checkRemoveTree(target, r.user, `remove ${target}`);
      try {
        await rm(target, { recursive: true, force: true });
      } catch (err) {
        throw toConnectError(err, `cannot remove ${target}`);
      }
      return {};
    },

    async *watchDir(req, ctx): AsyncGenerator<WatchResponse> {
      const r = requester(state, ctx);
      const dir = r.resolve(req.path);
      await checkWatchable(dir, req.allowNetworkMounts);

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
          for (const ev of await toFsEvents(batch, req.includeEntry, state.etcDir)) {
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
      await checkWatchable(dir, req.allowNetworkMounts);
      const id = `w${nodeCrypto().randomBytes(8).toString('hex')}`;
      const entry: PollingWatcher = { events: [], watcher: undefined as unknown as DirWatcher };
      // Entry lookups are async: chain them so events keep their order.
      let chain = Promise.resolve();
      entry.watcher = new DirWatcher(
        dir,
        req.recursive,
        (events) => {
          chain = chain
            .then(() => toFsEvents(events, req.includeEntry, state.etcDir))
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
