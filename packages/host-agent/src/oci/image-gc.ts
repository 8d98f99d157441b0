// Garbage collection of the host's container-image cache: the `oci-*` templates made when a
// capsule or template starts from an image, and the unpacked layers under <cacheDir>/layers.
// Why here, and why like this: nothing else ever removes them, and a layer may only go once no
// template (an image template, or a snapshot/build stacked on one: they list its layer dirs in
// imageLayers), no capsule (running, paused, hibernated, pooled) and no pull under way uses it.
//
// A pass reads each template's small manifest and one directory listing of the layers; it never
// walks a layer's tree (sizes are recorded once, when a layer is unpacked), so the agent can run
// it on a timer. Use times are directory mtimes, set on each pull of an image (its layers and
// template), on each capsule created from an image template, and by each pass for what it finds
// in use, so "unused for N seconds" counts from roughly the last capsule that ran on it.
//
// Exclusion inside the agent (the only process that manages these directories): pulls run under
// `shared()`, a pass is `exclusive`; a capsule create `hold()`s its template name from before it
// looks the template up until its record exists, and a pass re-checks holds right before it
// removes a template. A template removed between a pull and a create (the control plane makes
// those two calls) makes that create fail with "template not found"; the control plane then
// pulls again and retries once.
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { diskUsageBytes } from '../rootfs/disk-usage.js';
import type { TemplateManifest } from '../rootfs/manifest.js';
import { removeTree } from '../rootfs/remove-tree.js';
import type { TemplateStore } from '../rootfs/template-store.js';

export interface ImageGcSettings {
  /** An unreferenced image template or layer unused this long goes at the periodic pass. */
  keepMs: number;
  /** Over the budget, unreferenced layers are removed oldest-used first, but none used this recently. */
  graceMs: number;
  /** Bytes the cached layers may take (0: no budget, only keepMs applies). */
  budgetBytes: number;
  /** Time between periodic passes (0: none; prune on demand only). */
  intervalMs: number;
}

export const DEFAULT_IMAGE_GC: Readonly<ImageGcSettings> = {
  keepMs: 86_400_000,
  graceMs: 600_000,
  budgetBytes: 0,
  intervalMs: 600_000,
};

function envNumber(env: NodeJS.ProcessEnv, name: string, fallback: number, scale: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d{1,12}$/.test(raw.trim())) throw new Error(`${name}=${JSON.stringify(raw)}: expected a whole number ≥ 0`);
  return Number(raw.trim()) * scale;
}

/** Settings from WRENN_IMAGE_KEEP_SEC, WRENN_IMAGE_GC_GRACE_SEC, WRENN_IMAGE_CACHE_MB, WRENN_IMAGE_GC_INTERVAL_SEC. */
export function imageGcSettings(env: NodeJS.ProcessEnv = process.env): ImageGcSettings {
  return {
    keepMs: envNumber(env, 'WRENN_IMAGE_KEEP_SEC', DEFAULT_IMAGE_GC.keepMs, 1000),
    graceMs: envNumber(env, 'WRENN_IMAGE_GC_GRACE_SEC', DEFAULT_IMAGE_GC.graceMs, 1000),
    budgetBytes: envNumber(env, 'WRENN_IMAGE_CACHE_MB', DEFAULT_IMAGE_GC.budgetBytes, 1048576),
    intervalMs: envNumber(env, 'WRENN_IMAGE_GC_INTERVAL_SEC', DEFAULT_IMAGE_GC.intervalMs, 1000),
  };
}

export interface PruneOptions {
  /** Template names capsules use now (running, paused, hibernated, pooled); asked again before each removal. */
  inUse: () => Iterable<string>;
  /** Remove what is unreferenced and unused this long (default the keep setting; 0: all of it). */
  olderThanMs?: number;
  /** Skip the pass (rather than wait) while pulls run: the periodic pass uses it. */
  ifIdle?: boolean;
}

export interface PruneReport {
  removedTemplates: string[];
  /** Layer digests (sha256:…). */
  removedLayers: string[];
  freedBytes: number;
  /** Cached layers and their bytes after the pass. */
  keptLayers: number;
  cacheBytes: number;
  /** Set when the pass did not run (pulls under way and ifIdle). */
  skipped?: string;
}

interface LayerInfo {
  hex: string;
  dir: string;
  bytes: number;
  usedAt: number;
}

const SIZES = 'sizes';
const TRASH = 'trash';

/** Records a freshly unpacked layer's size (so passes never walk it) and marks it used. */
export async function recordLayer(cacheDir: string, dir: string): Promise<void> {
  const hex = dir.slice(dir.lastIndexOf('/') + 1);
  await mkdir(join(cacheDir, SIZES), { recursive: true, mode: 0o700 });
  await writeFile(join(cacheDir, SIZES, hex), `${await diskUsageBytes(dir)}\n`, { mode: 0o600 });
}

/** Marks a directory used now (its mtime; the layer and template dirs never change after they are made). */
export async function touch(dir: string): Promise<void> {
  const now = new Date();
  await utimes(dir, now, now).catch(() => undefined);
}

async function mtimeMs(path: string): Promise<number> {
  return stat(path).then(
    (s) => s.mtimeMs,
    () => 0,
  );
}

export class ImageGc {
  private readers = 0;
  private drained: (() => void) | undefined;
  private pass: Promise<PruneReport> | undefined;
  private readonly holds = new Map<string, number>();
  // Templates a pass decided to remove: lookups treat them as gone from that moment on.
  private readonly doomedNames = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  readonly cacheDir: string;

  constructor(
    private readonly store: TemplateStore,
    cacheDir: string,
    readonly settings: ImageGcSettings = DEFAULT_IMAGE_GC,
  ) {
    this.cacheDir = resolve(cacheDir);
  }

  /** Runs `fn` (a pull and the template made from it) while no pass runs. */
  async shared<T>(fn: () => Promise<T>): Promise<T> {
    while (this.pass) await this.pass.catch(() => undefined);
    this.readers++;
    try {
      return await fn();
    } finally {
      this.readers--;
      if (this.readers === 0) this.drained?.();
    }
  }

  /** True while a pass removes template `name` (a capsule create must not start on it). */
  doomed(name: string): boolean {
    return this.doomedNames.has(name);
  }

  /**
   * Keeps template `name` from being removed until the returned function is called. Take it
   * before looking the template up: a pass either sees the hold or has already made the
   * template look gone (doomed).
   */
  hold(name: string): () => void {
    this.holds.set(name, (this.holds.get(name) ?? 0) + 1);
    if (name.startsWith('oci-')) void touch(join(this.store.imagesDir, name));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.holds.get(name) ?? 1) - 1;
      if (n <= 0) this.holds.delete(name);
      else this.holds.set(name, n);
    };
  }

  /** Starts the periodic pass (settings.intervalMs; 0: none). `inUse` gives the capsules' templates. */
  startTimer(inUse: () => Iterable<string>, log: (msg: string, data: Record<string, unknown>) => void): void {
    if (this.settings.intervalMs <= 0 || this.timer) return;
    const tick = async () => {
      try {
        const r = await this.prune({ inUse, ifIdle: true });
        if (r.removedTemplates.length || r.removedLayers.length)
          log('image cache pruned', {
            templates: r.removedTemplates,
            layers: r.removedLayers.length,
            freedBytes: r.freedBytes,
            cacheBytes: r.cacheBytes,
          });
      } catch (err) {
        log('image cache prune failed', { err: String(err) });
      }
      if (this.timer) this.timer = setTimeout(tick, this.settings.intervalMs).unref();
    };
    this.timer = setTimeout(tick, this.settings.intervalMs).unref();
  }

  stopTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** One pass: waits for pulls under way (or skips, ifIdle), then removes what nothing uses. */
  async prune(opts: PruneOptions): Promise<PruneReport> {
    while (this.pass) {
      if (opts.ifIdle) return this.skippedReport('another pass is running');
      await this.pass.catch(() => undefined);
    }
    if (opts.ifIdle && this.readers > 0) return this.skippedReport('pulls are under way');
    const p = (async () => {
      while (this.readers > 0) await new Promise<void>((r) => (this.drained = r));
      this.drained = undefined;
      return this.pruneNow(opts.inUse, opts.olderThanMs ?? this.settings.keepMs);
    })();
    this.pass = p;
    try {
      return await p;
    } finally {
      if (this.pass === p) this.pass = undefined;
    }
  }

  private skippedReport(why: string): PruneReport {
    return { removedTemplates: [], removedLayers: [], freedBytes: 0, keptLayers: 0, cacheBytes: 0, skipped: why };
  }

  /** Image templates of this cache: their layer dirs all lie in it (a shared template dir holds others'). */
  private ours(t: TemplateManifest): boolean {
    const layers = join(this.cacheDir, 'layers');
    return t.kind === 'image' && (t.imageLayers ?? []).every((d) => resolve(d).startsWith(`${layers}/`));
  }

  private async pruneNow(inUse: () => Iterable<string>, olderThanMs: number): Promise<PruneReport> {
    const now = Date.now();
    const report: PruneReport = {
      removedTemplates: [],
      removedLayers: [],
      freedBytes: 0,
      keptLayers: 0,
      cacheBytes: 0,
    };
    await this.emptyTrash();
    let templates = await this.store.listTemplates();
    const byName = new Map(templates.map((t) => [t.name, t]));
    // Templates kept because something uses them: capsules' templates and holds, with every
    // layer below them, and every layer of any template that is not a candidate for removal.
    const used = new Set<string>();
    const useClosure = (name: string) => {
      used.add(name);
      for (const l of byName.get(name)?.layers ?? []) used.add(l);
    };
    for (const n of [...inUse(), ...this.holds.keys()]) useClosure(n);
    for (const t of templates) if (!this.ours(t)) for (const l of t.layers) if (l !== t.name) used.add(l);
    const templateUsedAt = new Map<string, number>();
    for (const t of templates.filter((x) => this.ours(x))) {
      const dir = join(this.store.imagesDir, t.name);
      if (used.has(t.name)) {
        await touch(dir);
        templateUsedAt.set(t.name, now);
      } else templateUsedAt.set(t.name, await mtimeMs(dir));
    }
    const layers = await this.layers();
    // A layer was last used when it was pulled or when a template over it was.
    for (const t of templates)
      for (const d of t.imageLayers ?? []) {
        const l = layers.get(resolve(d));
        if (l) l.usedAt = Math.max(l.usedAt, templateUsedAt.get(t.name) ?? now);
      }

    // In use now: a capsule made since the pass started, or a create holding it (checked with no
    // await before the template is marked doomed, so a create either shows here or finds it gone).
    const inUseNow = (name: string): boolean => {
      if (this.holds.has(name)) return true;
      for (const n of inUse()) if (n === name || byName.get(n)?.layers.includes(name)) return true;
      return false;
    };
    const removeTemplate = async (t: TemplateManifest): Promise<boolean> => {
      if (inUseNow(t.name)) return false;
      this.doomedNames.add(t.name);
      try {
        await this.store.deleteTemplate(t.name);
      } catch {
        return false; // stacked on meanwhile, or already gone
      } finally {
        this.doomedNames.delete(t.name);
      }
      report.removedTemplates.push(t.name);
      report.freedBytes += t.size;
      return true;
    };
    const candidates = () =>
      templates
        .filter((t) => this.ours(t) && !used.has(t.name))
        .sort((a, b) => (templateUsedAt.get(a.name) ?? 0) - (templateUsedAt.get(b.name) ?? 0));
    const referenced = () => new Set(templates.flatMap((t) => t.imageLayers ?? []).map((d) => resolve(d)));
    const removeLayer = async (l: LayerInfo) => {
      await mkdir(join(this.cacheDir, TRASH), { recursive: true, mode: 0o700 });
      const doomed = join(this.cacheDir, TRASH, `${l.hex}-${process.pid}-${Date.now()}`);
      await rename(l.dir, doomed);
      await removeTree(doomed);
      await rm(join(this.cacheDir, SIZES, l.hex), { force: true });
      layers.delete(l.dir);
      report.removedLayers.push(`sha256:${l.hex}`);
      report.freedBytes += l.bytes;
    };

    // 1. What is unreferenced and unused for olderThanMs.
    for (const t of candidates()) {
      if (now - (templateUsedAt.get(t.name) ?? 0) < olderThanMs) continue;
      if (await removeTemplate(t)) templates = templates.filter((x) => x.name !== t.name);
    }
    let refs = referenced();
    for (const l of [...layers.values()]) {
      if (!refs.has(l.dir) && now - l.usedAt >= olderThanMs) await removeLayer(l);
    }

    // 2. Over the budget: unreferenced image templates, then their layers, oldest-used first,
    // none used within the grace period.
    const total = () => [...layers.values()].reduce((s, l) => s + l.bytes, 0);
    if (this.settings.budgetBytes > 0 && total() > this.settings.budgetBytes) {
      const graceMs = this.settings.graceMs;
      for (const t of candidates()) {
        if (total() <= this.settings.budgetBytes) break;
        if (now - (templateUsedAt.get(t.name) ?? 0) < graceMs) continue;
        if (!(await removeTemplate(t))) continue;
        templates = templates.filter((x) => x.name !== t.name);
        refs = referenced();
        for (const d of t.imageLayers ?? []) {
          const l = layers.get(resolve(d));
          if (l && !refs.has(l.dir)) await removeLayer(l);
        }
      }
      const loose = [...layers.values()].filter((l) => !refs.has(l.dir)).sort((a, b) => a.usedAt - b.usedAt);
      for (const l of loose) {
        if (total() <= this.settings.budgetBytes) break;
        if (now - l.usedAt >= graceMs) await removeLayer(l);
      }
    }
    report.keptLayers = layers.size;
    report.cacheBytes = total();
    return report;
  }

  /** The cached layers with their recorded sizes (recorded now, once, for a layer without one). */
  private async layers(): Promise<Map<string, LayerInfo>> {
    const root = join(this.cacheDir, 'layers');
    const out = new Map<string, LayerInfo>();
    for (const hex of await readdir(root).catch(() => [] as string[])) {
      if (!/^[0-9a-f]{64}$/.test(hex)) continue;
      const dir = join(root, hex);
      const sizeFile = join(this.cacheDir, SIZES, hex);
      let bytes = Number.parseInt(await readFile(sizeFile, 'utf8').catch(() => ''), 10);
      if (!Number.isFinite(bytes)) {
        await recordLayer(this.cacheDir, dir);
        bytes = Number.parseInt(await readFile(sizeFile, 'utf8'), 10);
      }
      out.set(dir, { hex, dir, bytes, usedAt: await mtimeMs(dir) });
    }
    return out;
  }

  /** Layers whose removal a crash interrupted. */
  private async emptyTrash(): Promise<void> {
    const trash = join(this.cacheDir, TRASH);
    if (!existsSync(trash)) return;
    for (const n of await readdir(trash)) await removeTree(join(trash, n));
  }
}
