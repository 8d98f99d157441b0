// Persisted slot allocation: one JSON file per slot under <dataDir>/network/slots/<slot>.json, so a
// restarted agent finds the slots (and addresses, rules, metadata) of capsules that kept running.
// New files are written to a temp name and hard-linked into place: link() fails if the slot file
// exists, which makes the claim atomic even against a second agent process on the same data dir.

import { randomBytes } from 'node:crypto';
import { link, mkdir, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { NetworkRule } from '@wrenn/protocol';
import { Mutex } from './mutex.js';

export interface SlotRecord {
  slot: number;
  /** The capsule's id; '' for a pre-built (warm) network that no capsule has taken yet. */
  id: string;
  netnsName: string;
  internet: boolean;
  /** The capsule's allowOut CIDRs and domains (absent in records of older agents: none). */
  allowOut?: string[];
  /** The capsule's denyOut CIDRs (absent: none). */
  denyOut?: string[];
  /** Domain -> transforms of the egress proxy (absent: none). */
  rules?: Record<string, NetworkRule[]>;
  rateMbit: number;
  /** Values the metadata endpoint serves to this capsule. */
  metadata: Record<string, string>;
  pool: string;
  createdAt: string;
}

export class SlotStore {
  readonly dir: string;
  private readonly mutex = new Mutex();
  private readonly bySlot = new Map<number, SlotRecord>();
  private readonly reserved = new Set<number>(); // claimed in memory, file not yet written
  private loaded = false;
  private hint = 0;

  constructor(
    dataDir: string,
    private readonly slotCount: number,
  ) {
    this.dir = join(dataDir, 'network', 'slots');
  }

  /** Reads every slot file once; unreadable files are returned so cleanup can remove them. */
  async load(): Promise<{ corrupt: string[] }> {
    return this.mutex.runExclusive(async () => {
      await mkdir(this.dir, { recursive: true });
      this.bySlot.clear();
      const corrupt: string[] = [];
      for (const name of await readdir(this.dir)) {
        if (!/^\d+\.json$/.test(name)) {
          if (name.startsWith('.tmp-')) corrupt.push(name);
          continue;
        }
        try {
          const rec = JSON.parse(await readFile(join(this.dir, name), 'utf8')) as SlotRecord;
          if (typeof rec.id !== 'string' || rec.slot !== Number(name.slice(0, -5))) throw new Error('bad record');
          this.bySlot.set(rec.slot, rec);
        } catch {
          corrupt.push(name);
        }
      }
      // Hand out slots round-robin from after the highest one in use, so an address freed by a
      // destroyed capsule is not reused at once (the conntrack entries of its flows age out first).
      const highest = Math.max(-1, ...this.bySlot.keys());
      this.hint = (highest + 1) % this.slotCount;
      this.loaded = true;
      return { corrupt };
    });
  }

  private assertLoaded(): void {
    if (!this.loaded) throw new Error('slot store used before load(): call init() on the network manager first');
  }

  list(): SlotRecord[] {
    this.assertLoaded();
    return [...this.bySlot.values()].sort((a, b) => a.slot - b.slot);
  }

  byId(id: string): SlotRecord | undefined {
    this.assertLoaded();
    for (const r of this.bySlot.values()) if (r.id === id) return r;
    return undefined;
  }

  bySlotNumber(slot: number): SlotRecord | undefined {
    return this.bySlot.get(slot);
  }

  /** Claims the lowest free slot at or after the last one handed out, persisting `make(slot)`. */
  async allocate(make: (slot: number) => SlotRecord): Promise<SlotRecord> {
    this.assertLoaded();
    return this.mutex.runExclusive(async () => {
      for (let i = 0; i < this.slotCount; i++) {
        const slot = (this.hint + i) % this.slotCount;
        if (this.bySlot.has(slot) || this.reserved.has(slot)) continue;
        const rec = make(slot);
        const tmp = await this.writeTemp(rec);
        try {
          await link(tmp, this.file(slot));
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
            this.reserved.add(slot); // another process owns it; skip it from now on
            continue;
          }
          throw e;
        } finally {
          await unlink(tmp).catch(() => {});
        }
        this.bySlot.set(slot, rec);
        this.hint = (slot + 1) % this.slotCount;
        return rec;
      }
      throw new Error(
        `no free network slot: all ${this.slotCount} slots are in use (destroy capsules or widen WRENN_NET_POOL)`,
      );
    });
  }

  /**
   * Atomically turns the first record that `match`es into `change(record)` (persisted), or
   * resolves undefined when none matches. Used to hand a pre-built network to a new capsule.
   */
  async takeFirst(
    match: (r: SlotRecord) => boolean,
    change: (r: SlotRecord) => SlotRecord,
  ): Promise<SlotRecord | undefined> {
    this.assertLoaded();
    return this.mutex.runExclusive(async () => {
      for (const r of this.bySlot.values()) {
        if (!match(r)) continue;
        const next = change(r);
        const tmp = await this.writeTemp(next);
        await rename(tmp, this.file(next.slot));
        this.bySlot.set(next.slot, next);
        return next;
      }
      return undefined;
    });
  }

  /** Replaces a record atomically (temp file + rename). */
  async update(rec: SlotRecord): Promise<void> {
    await this.mutex.runExclusive(async () => {
      const tmp = await this.writeTemp(rec);
      await rename(tmp, this.file(rec.slot));
      this.bySlot.set(rec.slot, rec);
    });
  }

  async release(slot: number): Promise<void> {
    await this.mutex.runExclusive(async () => {
      await unlink(this.file(slot)).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw e;
      });
      this.bySlot.delete(slot);
      this.reserved.delete(slot);
    });
  }

  /** Removes files load() could not parse (and leftover temp files). */
  async removeFiles(names: readonly string[]): Promise<void> {
    for (const n of names) await unlink(join(this.dir, n)).catch(() => {});
  }

  private file(slot: number): string {
    return join(this.dir, `${slot}.json`);
  }

  private async writeTemp(rec: SlotRecord): Promise<string> {
    const tmp = join(this.dir, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
    await writeFile(tmp, `${JSON.stringify(rec)}\n`, { mode: 0o600 });
    return tmp;
  }
}
