// One read-only loop device per base image, shared by every capsule whose disk is a snapshot of
// it. Its users (capsule ids) are persisted in a JSON file under the data directory, so an agent
// that restarts knows which devices are still needed; the device is detached when the last one
// goes. A base image rebuilt in place of the old one (new inode) gets a device of its own: the old
// device keeps serving the capsules made from the old image.
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { attachLoop, detachLoop, type LoopDevice, listLoops } from './loop.js';

export interface BaseLoopEntry {
  /** The base image's absolute path. */
  image: string;
  /** Its inode when the device was attached. */
  ino: number;
  /** /dev/loopN, read-only. */
  loop: string;
  /** Capsule ids using it (the refcount is their number). */
  users: string[];
}

interface State {
  bases: BaseLoopEntry[];
}

/** Serialises every read-modify-write of one state file inside this process. */
const locks = new Map<string, Promise<unknown>>();
function withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const prev = locks.get(key) ?? Promise.resolve();
  const next = prev.then(fn, fn);
  const tail = next.catch(() => {});
  locks.set(key, tail);
  void tail.then(() => {
    if (locks.get(key) === tail) locks.delete(key);
  });
  return next;
}

const isLoopOf = (d: LoopDevice | undefined, e: BaseLoopEntry) =>
  !!d && d.backFile === e.image && d.backIno === e.ino && d.readOnly;

export class BaseLoops {
  constructor(readonly stateFile: string) {
    if (!stateFile) throw new Error('BaseLoops needs the path of its state file');
  }

  private async load(): Promise<State> {
    const text = await readFile(this.stateFile, 'utf8').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return '';
      throw e;
    });
    if (!text) return { bases: [] };
    try {
      const s = JSON.parse(text) as State;
      if (!Array.isArray(s.bases)) throw new Error('no "bases" list');
      return s;
    } catch (err) {
      throw new Error(
        `the base loop device registry ${this.stateFile} is unreadable (${(err as Error).message}): fix or delete it`,
      );
    }
  }

  /** Written to a temporary file and renamed: a crash never leaves half a registry. */
  private async store(s: State): Promise<void> {
    await mkdir(dirname(this.stateFile), { recursive: true });
    const tmp = `${this.stateFile}.${process.pid}.tmp`;
    await writeFile(tmp, `${JSON.stringify(s, null, 1)}\n`);
    await rename(tmp, this.stateFile);
  }

  /** The entries as persisted (for diagnostics and tests). */
  entries(): Promise<BaseLoopEntry[]> {
    return withLock(this.stateFile, async () => (await this.load()).bases);
  }

  /**
   * The read-only loop device of `image` for capsule `user`: the existing one when it still backs
   * this very file, a newly attached one otherwise. Acquiring twice for one user counts once.
   */
  acquire(image: string, user: string): Promise<string> {
    const abs = resolve(image);
    return withLock(this.stateFile, async () => {
      const ino = (
        await stat(abs).catch(() => {
          throw new Error(`the base image ${abs} does not exist: build the template's VM image first`);
        })
      ).ino;
      const s = await this.load();
      let e = s.bases.find((b) => b.image === abs && b.ino === ino);
      if (e) {
        const devices = await listLoops();
        if (
          !isLoopOf(
            devices.find((d) => d.name === e?.loop),
            e,
          )
        ) {
          // Its device vanished (host reboot, someone detached it): the users left with it.
          s.bases = s.bases.filter((b) => b !== e);
          e = undefined;
        }
      }
      if (!e) {
        e = { image: abs, ino, loop: await attachLoop(abs, true), users: [] };
        s.bases.push(e);
      }
      if (!e.users.includes(user)) e.users.push(user);
      try {
        await this.store(s);
      } catch (err) {
        if (e.users.length === 1) await detachLoop(e.loop).catch(() => {});
        throw err;
      }
      return e.loop;
    });
  }

  /** Drops `user` from the base device `loop`; the last user's release detaches it. */
  release(loop: string, user: string): Promise<void> {
    return withLock(this.stateFile, async () => {
      const s = await this.load();
      const e = s.bases.find((b) => b.loop === loop);
      if (!e) return;
      e.users = e.users.filter((u) => u !== user);
      if (e.users.length === 0) {
        // Only while it still backs our image: after a reboot the number may be someone else's.
        if (
          isLoopOf(
            (await listLoops()).find((d) => d.name === e.loop),
            e,
          )
        )
          await detachLoop(e.loop);
        s.bases = s.bases.filter((b) => b !== e);
      }
      await this.store(s);
    });
  }

  /**
   * Agent start: users the agent no longer knows are dropped, devices without users detached,
   * entries whose device is gone forgotten. Returns the devices it detached.
   */
  reconcile(known: (user: string) => boolean): Promise<string[]> {
    return withLock(this.stateFile, async () => {
      const s = await this.load();
      const devices = await listLoops();
      const detached: string[] = [];
      const keep: BaseLoopEntry[] = [];
      for (const e of s.bases) {
        const alive = isLoopOf(
          devices.find((d) => d.name === e.loop),
          e,
        );
        e.users = e.users.filter(known);
        if (alive && e.users.length === 0) {
          await detachLoop(e.loop);
          detached.push(e.loop);
        } else if (alive) keep.push(e);
      }
      s.bases = keep;
      await this.store(s);
      return detached;
    });
  }
}
