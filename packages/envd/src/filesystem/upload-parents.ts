// POST /files creates the missing parent directories of an upload as root and gives them to the
// requesting user, as E2B's envd does (permissions.EnsureDirs): an upload to /opt/app/x works for
// the default user although /opt is root's. Only the directories are made as root; the file itself
// is still opened as the user (upload.ts). Each directory is made, opened without following a
// symlink, checked to be the one at the intended path (/proc/self/fd), and chowned through that fd,
// so a user swapping a path component meanwhile cannot get root to chown anything else.
import { close, fchown, mkdir, open, readlink, realpath, rmdir, stat } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { errnoCode } from './errors.js';
import { PathError } from './paths.js';

const mkdirAsync = promisify(mkdir);
const openAsync = promisify(open);
const closeAsync = promisify(close);
const fchownAsync = promisify(fchown);
const readlinkAsync = promisify(readlink);
const realpathAsync = promisify(realpath);
const rmdirAsync = promisify(rmdir);
const statAsync = promisify(stat);
const O_RDONLY_DIR_NOFOLLOW = 0o200000 | 0o400000; // O_DIRECTORY | O_NOFOLLOW

/** What parentsOwnedBy made, deepest last; undo() removes them again (if still empty). */
export interface MadeParents {
  made: string[];
  undo(): Promise<void>;
}

/** Creates the missing directories of `dir` as root (0755), owned by uid:gid. */
export async function parentsOwnedBy(dir: string, owner: { uid: number; gid: number }): Promise<MadeParents> {
  const missing: string[] = [];
  let cur = path.resolve(dir);
  for (;;) {
    try {
      if (!(await statAsync(cur)).isDirectory())
        throw new PathError(`cannot create directory ${dir}: ${cur} is not a directory`);
      break;
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
      missing.push(path.basename(cur));
      const parent = path.dirname(cur);
      if (parent === cur) break;
      cur = parent;
    }
  }
  const made: string[] = [];
  const result: MadeParents = {
    made,
    async undo() {
      for (const d of [...made].reverse()) await rmdirAsync(d).catch(() => undefined);
    },
  };
  if (missing.length === 0) return result;
  // The existing part as it really is (symlinks followed, as E2B's envd follows them).
  let at = await realpathAsync(cur);
  try {
    for (const name of missing.reverse()) {
      at = path.join(at, name);
      try {
        await mkdirAsync(at, 0o755);
      } catch (err) {
        if (errnoCode(err) === 'EEXIST') continue; // someone else's: left as it is
        throw err;
      }
      made.push(at);
      await chownMade(at, owner);
    }
  } catch (err) {
    await result.undo();
    throw err;
  }
  return result;
}

async function chownMade(dir: string, owner: { uid: number; gid: number }): Promise<void> {
  const fd = await openAsync(dir, O_RDONLY_DIR_NOFOLLOW);
  try {
    const opened = await readlinkAsync(`/proc/self/fd/${fd}`);
    if (opened !== dir) throw new PathError(`directory ${dir} was moved while it was being created (now ${opened})`);
    await fchownAsync(fd, owner.uid, owner.gid);
  } finally {
    await closeAsync(fd);
  }
}
