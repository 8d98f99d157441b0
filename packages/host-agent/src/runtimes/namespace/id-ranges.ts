// Each namespace capsule's own host uid/gid range (65536 ids: root inside is the range's first id),
// so per-user kernel state (keyrings and key quota, inotify instances and watches, the pipe buffer
// budget, RLIMIT_NPROC) is per capsule and not shared by all tenants.
//
// Claims are files <dataDir>/id-ranges/<slot> holding the capsule id, created with O_EXCL (atomic
// even against a second agent on the same data dir), so an agent restart finds the ranges of the
// capsules that kept running; cleanupStale releases the claims of capsules nobody knows.
//
// Default ranges: 0x70000000 (1879048192) up to 0x7FFE0000, 4094 ranges. That block is unused by
// the common conventions: useradd hands out /etc/subuid ranges from 100000 to 600100000
// (SUB_UID_MAX), systemd-nspawn picks from 524288..1879048191 and systemd's "foreign" range starts
// at 0x7FFE0000; ids >= 2^31 are avoided because some tools treat uids as signed. It never holds
// host root or the canonical storage range 100000..165535 the template layers are stored in.
import { readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Mutex } from '../../network/mutex.js';
import { HOST_ID_BASE, ID_RANGE } from '../../rootfs/id-map.js';

export const DEFAULT_CAPSULE_ID_BASE = 0x7000_0000;
export const DEFAULT_CAPSULE_ID_RANGES = (0x7ffe_0000 - DEFAULT_CAPSULE_ID_BASE) / ID_RANGE;
const ID_LIMIT = 2 ** 31;

export interface IdRangeConfig {
  /** Host id of root inside the capsule in slot 0 (WRENN_CAPSULE_ID_BASE). */
  base: number;
  /** How many capsule ranges follow it (WRENN_CAPSULE_ID_RANGES). */
  count: number;
}

export interface IdRange {
  slot: number;
  /** Host uid/gid that uid/gid 0 inside maps to. */
  base: number;
}

/** The configured block, from the given values or WRENN_CAPSULE_ID_BASE / WRENN_CAPSULE_ID_RANGES. */
export function idRangeConfig(given: Partial<IdRangeConfig> = {}, env = process.env): IdRangeConfig {
  const num = (v: string | undefined, name: string) => {
    if (v === undefined || v === '') return undefined;
    if (!/^\d+$/.test(v.trim())) throw new Error(`${name}=${v} must be a whole number`);
    return Number(v);
  };
  const base = given.base ?? num(env.WRENN_CAPSULE_ID_BASE, 'WRENN_CAPSULE_ID_BASE') ?? DEFAULT_CAPSULE_ID_BASE;
  const count = given.count ?? num(env.WRENN_CAPSULE_ID_RANGES, 'WRENN_CAPSULE_ID_RANGES') ?? DEFAULT_CAPSULE_ID_RANGES;
  validateIdRangeConfig({ base, count });
  return { base, count };
}

export function validateIdRangeConfig({ base, count }: IdRangeConfig): void {
  const where = `capsule id ranges ${base}..${base + count * ID_RANGE - 1} (WRENN_CAPSULE_ID_BASE, WRENN_CAPSULE_ID_RANGES)`;
  if (!Number.isInteger(base) || base < ID_RANGE)
    throw new Error(`${where}: the base must be a whole number >= ${ID_RANGE}`);
  if (!Number.isInteger(count) || count < 1) throw new Error(`${where}: need at least one range`);
  if (base + count * ID_RANGE > ID_LIMIT) throw new Error(`${where}: must end below 2^31 (${ID_LIMIT})`);
  if (base < HOST_ID_BASE + ID_RANGE && base + count * ID_RANGE > HOST_ID_BASE)
    throw new Error(
      `${where}: overlaps ${HOST_ID_BASE}..${HOST_ID_BASE + ID_RANGE - 1}, the ids template layers are stored as`,
    );
}

/**
 * Entries of /etc/subuid and /etc/subgid that overlap the block: ids another user may hand to
 * its own containers. Returned as sentences; the caller refuses to start with them.
 */
export function subordinateIdConflicts(cfg: IdRangeConfig, files = ['/etc/subuid', '/etc/subgid']): string[] {
  const end = cfg.base + cfg.count * ID_RANGE;
  const out: string[] = [];
  for (const file of files) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue; // no such file: nobody has subordinate ids
    }
    for (const line of text.split('\n')) {
      const m = /^([^:#\s]+):(\d+):(\d+)\s*$/.exec(line);
      if (!m) continue;
      const [start, n] = [Number(m[2]), Number(m[3])];
      if (start < end && start + n > cfg.base)
        out.push(
          `${file}: ${m[1]} owns ${start}..${start + n - 1}, inside the capsule id block ${cfg.base}..${end - 1}`,
        );
    }
  }
  return out;
}

export class IdRangeStore {
  readonly dir: string;
  private readonly mutex = new Mutex();
  /** slot -> capsule id, once loaded. */
  private claims: Map<number, string> | undefined;
  private hint = 0;

  constructor(
    dataDir: string,
    readonly config: IdRangeConfig,
  ) {
    validateIdRangeConfig(config);
    this.dir = join(dataDir, 'id-ranges');
  }

  baseOf(slot: number): number {
    return this.config.base + slot * ID_RANGE;
  }

  private async load(): Promise<Map<number, string>> {
    if (this.claims) return this.claims;
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const claims = new Map<number, string>();
    for (const name of await readdir(this.dir)) {
      const slot = /^\d+$/.test(name) ? Number(name) : -1;
      const id = slot >= 0 ? await this.holderOf(name) : '';
      // A file outside the configured block or without an id still holds its slot until cleanupStale.
      claims.set(slot >= 0 ? slot : -1 - claims.size, id);
    }
    // Round-robin from after the highest slot in use: a freed range is not handed out again at
    // once (kernel state charged to its ids, such as keys being garbage-collected, ages out first).
    this.hint = (Math.max(-1, ...claims.keys()) + 1) % this.config.count;
    this.claims = claims;
    return claims;
  }

  /** Claims a free range for capsule `id` (persisted before it returns). */
  async allocate(id: string): Promise<IdRange> {
    return this.mutex.runExclusive(async () => {
      const claims = await this.load();
      for (let i = 0; i < this.config.count; i++) {
        const slot = (this.hint + i) % this.config.count;
        if (claims.has(slot)) continue;
        try {
          await writeFile(join(this.dir, String(slot)), `${id}\n`, { flag: 'wx', mode: 0o600 });
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
          claims.set(slot, ''); // another agent on this data dir took it
          continue;
        }
        claims.set(slot, id);
        this.hint = (slot + 1) % this.config.count;
        return { slot, base: this.baseOf(slot) };
      }
      throw new Error(
        `no free capsule id range: all ${this.config.count} are in use (destroy capsules or raise WRENN_CAPSULE_ID_RANGES)`,
      );
    });
  }

  /**
   * Releases whatever range capsule `id` holds (nothing when it holds none). The slot comes from
   * the cache and its file is checked before it goes; only when the cache knows no slot of `id`
   * (claimed by another runtime on this data dir since we loaded) is every claim file read: that
   * is one file per capsule, ~30 ms per destroy at 1,000 capsules.
   */
  async release(id: string): Promise<void> {
    await this.mutex.runExclusive(async () => {
      const claims = await this.load();
      const cached = [...claims].filter(([, holder]) => holder === id).map(([slot]) => slot);
      let missed = cached.length === 0;
      for (const slot of cached) {
        if ((await this.holderOf(String(slot))) !== id) {
          missed = true;
          continue;
        }
        await unlink(join(this.dir, String(slot))).catch((e: NodeJS.ErrnoException) => {
          if (e.code !== 'ENOENT') throw e;
        });
        claims.delete(slot);
      }
      if (missed) await this.releaseWhereLocked((holder) => holder === id);
    });
  }

  /** Releases every claim whose capsule is not in `knownIds` (stale after a crash). */
  async releaseUnknown(knownIds: ReadonlySet<string>): Promise<void> {
    await this.mutex.runExclusive(() => this.releaseWhereLocked((holder) => !knownIds.has(holder)));
  }

  private async releaseWhereLocked(match: (holder: string) => boolean): Promise<void> {
    const claims = await this.load();
    for (const name of await readdir(this.dir)) {
      const slot = /^\d+$/.test(name) ? Number(name) : undefined;
      // From the file, not the cache: another runtime on this data dir may have claimed it since.
      const holder = slot !== undefined ? await this.holderOf(name) : '';
      if (!match(holder)) continue;
      await unlink(join(this.dir, name)).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw e;
      });
      if (slot !== undefined) claims.delete(slot);
    }
  }

  private async holderOf(name: string): Promise<string> {
    return (await readFile(join(this.dir, name), 'utf8').catch(() => '')).trim();
  }

  /** Capsule id per claimed slot (for tests and diagnostics). */
  async list(): Promise<Map<number, string>> {
    return this.mutex.runExclusive(async () => new Map(await this.load()));
  }
}
