// Templates on disk: <imagesDir>/<name>/{manifest.json, rootfs/}. A base template is built from
// a recipe on first use (one build at a time, atomically renamed into place); a snapshot template
// is a capsule's upper layer stacked over its parent's layers; an image template is a small layer
// over a container image's cached layers (oci/), which it and its snapshots use in place.

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { access, chmod, chown, mkdir, readdir, rename } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { AlreadyExistsError, FailedPreconditionError, NotFoundError } from '@wrenn/protocol';
import type { PulledImage } from '../oci/image-pull.js';
import type { RuntimeName } from '../runtimes/runtime.js';
import { baseRecipe } from './base-recipe.js';
import { acquireLock } from './build-lock.js';
import { CODE_INTERPRETER_TEMPLATE, codeInterpreterRecipe } from './code-interpreter-recipe.js';
import { diskUsageBytes } from './disk-usage.js';
import { HOST_ID_BASE } from './id-map.js';
import { type ImageRootReport, prepareImageRoot } from './image-root.js';
import {
  capsuleFeatures,
  LAYER_DIR,
  readManifest,
  type TemplateManifest,
  validateTemplateName,
  writeManifest,
} from './manifest.js';
import { minimalRecipe } from './minimal-recipe.js';
import type { ProgressFn, TemplateRecipe } from './recipe.js';
import { removeTree, unmountUnder } from './remove-tree.js';
import { shiftOwnership } from './shift-ownership.js';

const run = promisify(execFile);

export interface TemplateStoreOptions {
  /** Where templates live; the agent uses <WRENN_DIR>/images. */
  imagesDir: string;
  /** Recipes for base templates by name; defaults to { minimal, base }. */
  recipes?: Record<string, TemplateRecipe>;
}

export interface EnsureOptions {
  /** Build progress, one line per step; default: written to stderr. */
  onProgress?: ProgressFn;
}

export interface SnapshotFromCapsuleOptions {
  /** Name of the new template. */
  name: string;
  /** The template the capsule was started from. */
  parent: string;
  /** The capsule's overlay upper directory; the caller keeps it still (frozen) while this copies. */
  upperDir: string;
  runtimes?: RuntimeName[];
}

export const DEFAULT_RECIPES: Readonly<Record<string, TemplateRecipe>> = {
  minimal: minimalRecipe,
  base: baseRecipe,
  [CODE_INTERPRETER_TEMPLATE]: codeInterpreterRecipe,
};

// Builds in progress in this process, by template directory, shared by every store instance.
const building = new Map<string, Promise<TemplateManifest>>();

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const stderrProgress: ProgressFn = (m) => process.stderr.write(`[wrenn template] ${m}\n`);

export class TemplateStore {
  readonly imagesDir: string;
  private readonly recipes: Record<string, TemplateRecipe>;
  // Manifests never change once written (a template is replaced only by delete + create), so
  // capsule creation skips re-reading them; deleteTemplate drops the entry.
  private readonly known = new Map<string, TemplateManifest>();

  constructor(opts: TemplateStoreOptions) {
    if (!opts?.imagesDir) throw new Error('TemplateStore needs imagesDir (e.g. /var/lib/wrenn/images)');
    this.imagesDir = resolve(opts.imagesDir);
    this.recipes = { ...(opts.recipes ?? DEFAULT_RECIPES) };
  }

  templateDir(name: string): string {
    validateTemplateName(name);
    return join(this.imagesDir, name);
  }

  /** Names of templates that can be built on demand. */
  recipeNames(): string[] {
    return Object.keys(this.recipes);
  }

  async get(name: string): Promise<TemplateManifest | undefined> {
    return readManifest(this.templateDir(name));
  }

  /** The template, building it from its recipe first when it is a base template not built yet. */
  async ensureTemplate(name: string, opts: EnsureOptions = {}): Promise<TemplateManifest> {
    const dir = this.templateDir(name);
    const cached = this.known.get(name);
    if (cached) return cached;
    const have = await readManifest(dir);
    if (have) {
      this.known.set(name, have);
      return have;
    }
    const recipe = this.recipes[name];
    if (!recipe) {
      const known = (await this.listTemplates()).map((t) => t.name);
      throw new Error(
        `template "${name}" does not exist; available: ${[...new Set([...known, ...this.recipeNames()])].sort().join(', ') || 'none'}`,
      );
    }
    let pending = building.get(dir);
    if (!pending) {
      pending = this.build(name, recipe, opts.onProgress ?? stderrProgress).finally(() => building.delete(dir));
      building.set(dir, pending);
    }
    return pending;
  }

  private async build(name: string, recipe: TemplateRecipe, onProgress: ProgressFn): Promise<TemplateManifest> {
    await mkdir(this.imagesDir, { recursive: true });
    const dir = join(this.imagesDir, name);
    const lock = await acquireLock(join(this.imagesDir, `.${name}.lock`), (pid) =>
      onProgress(`${name}: another process (pid ${pid}) is building it; waiting`),
    );
    try {
      const done = await readManifest(dir); // built by whoever held the lock before us
      if (done) return done;
      // Only the lock holder builds, so any earlier partial build is a crash's leftover.
      for (const n of await readdir(this.imagesDir)) {
        if (n.startsWith(`.build-${name}-`)) await removeTree(join(this.imagesDir, n));
      }
      const tmp = join(this.imagesDir, `.build-${name}-${process.pid}`);
      const started = Date.now();
      try {
        await mkdir(join(tmp, LAYER_DIR), { recursive: true });
        const parent = recipe.parent ? await this.ensureTemplate(recipe.parent, { onProgress }) : undefined;
        onProgress(`${name}: building (${recipe.description})`);
        if (parent) await this.buildOver(parent, tmp, (root) => recipe.build(root, onProgress));
        else await recipe.build(join(tmp, LAYER_DIR), onProgress);
        onProgress(`${name}: shifting file ownership into the capsule id range (uid + ${HOST_ID_BASE})`);
        await shiftOwnership(join(tmp, LAYER_DIR));
        const manifest: TemplateManifest = {
          name,
          kind: 'base',
          parent: parent?.name ?? null,
          layers: [name, ...(parent?.layers ?? [])],
          runtimes: ['namespace'],
          created_at: new Date().toISOString(),
          size: await diskUsageBytes(join(tmp, LAYER_DIR)),
          ...(recipe.readyPorts?.length ? { readyPorts: recipe.readyPorts } : {}),
        };
        await writeManifest(tmp, manifest);
        await rename(tmp, dir);
        onProgress(
          `${name}: ready in ${((Date.now() - started) / 1000).toFixed(1)} s (${(manifest.size / 1048576).toFixed(1)} MiB)`,
        );
        return manifest;
      } catch (err) {
        await removeTree(tmp).catch(() => undefined);
        throw new Error(`building template "${name}" failed: ${(err as Error).message}`);
      }
    } finally {
      await lock.release();
    }
  }

  /**
   * Runs `build` on an overlay of `parent`'s layers whose upper directory is <tmp>/rootfs, so what
   * it changes (whiteouts for what it deletes) becomes the new template's own layer. Files of the
   * parent keep their shifted ids; new ones are shifted afterwards like any recipe's.
   */
  private async buildOver(parent: TemplateManifest, tmp: string, build: (root: string) => Promise<void>) {
    await this.buildOverDirs(await this.layerDirs(parent), tmp, build);
  }

  /** buildOver with explicit lower directories (top first). */
  private async buildOverDirs(lowerDirs: string[], tmp: string, build: (root: string) => Promise<void>) {
    const lower = lowerDirs.join(':');
    const work = join(tmp, 'work');
    const merged = join(tmp, 'merged');
    await mkdir(work);
    await mkdir(merged);
    await run('mount', [
      '-t',
      'overlay',
      'overlay',
      '-o',
      `lowerdir=${lower},upperdir=${join(tmp, LAYER_DIR)},workdir=${work}`,
      merged,
    ]);
    try {
      await build(merged);
    } finally {
      await unmountUnder(merged);
    }
    await removeTree(work);
    await removeTree(merged);
  }

  /**
   * Removes what crashed builds and deletions left behind (.build-<name>-<pid> of dead pids,
   * .delete-*). Call at agent start; returns the names removed.
   */
  async cleanupLeftovers(): Promise<string[]> {
    const removed: string[] = [];
    for (const n of await readdir(this.imagesDir).catch(() => [] as string[])) {
      const build = /^\.build-.+-(\d+)$/.exec(n);
      const dead = build ? !pidAlive(Number(build[1])) : n.startsWith('.delete-');
      if (!dead) continue;
      await removeTree(join(this.imagesDir, n));
      removed.push(n);
    }
    return removed;
  }

  async listTemplates(): Promise<TemplateManifest[]> {
    const names = await readdir(this.imagesDir).catch(() => [] as string[]);
    const out: TemplateManifest[] = [];
    for (const n of names.sort()) {
      if (n.startsWith('.')) continue;
      const m = await readManifest(join(this.imagesDir, n)).catch(() => undefined);
      if (m) out.push(m);
    }
    return out;
  }

  /**
   * Absolute layer directories for overlayfs lowerdir, top first (template layers, then the
   * container image's under them); checks every layer exists.
   */
  async layerDirs(manifest: TemplateManifest): Promise<string[]> {
    const names = [...manifest.layers, ...(manifest.imageLayers ?? [])];
    const dirs = [...manifest.layers.map((n) => join(this.templateDir(n), LAYER_DIR)), ...(manifest.imageLayers ?? [])];
    // Synchronous: one stat per layer on every create costs less than a thread-pool round trip.
    for (const [i, d] of dirs.entries()) {
      if (!existsSync(d))
        throw new Error(`template "${manifest.name}" is broken: its layer "${names[i]}" (${d}) is missing`);
    }
    return dirs;
  }

  /**
   * Template `name` from a pulled container image: the image's cached layer dirs become its lower
   * layers as they are (no copy), under a small layer of its own (image-root.ts) shifted like a
   * recipe's. A template of that name from the same image manifest is returned as it is.
   */
  async fromImage(name: string, image: PulledImage, opts: EnsureOptions = {}): Promise<TemplateManifest> {
    // One make of a template at a time in this process (the lock file only keeps other processes
    // out: it takes a lock its own pid holds for a stale one).
    const dir = this.templateDir(name);
    for (let pending = building.get(dir); pending; pending = building.get(dir)) await pending.catch(() => undefined);
    const made = this.fromImageOnce(name, image, opts).finally(() => building.delete(dir));
    building.set(dir, made);
    return made;
  }

  private async fromImageOnce(name: string, image: PulledImage, opts: EnsureOptions): Promise<TemplateManifest> {
    const onProgress = opts.onProgress ?? stderrProgress;
    const dir = this.templateDir(name);
    const same = (m: TemplateManifest | undefined) =>
      m?.kind === 'image' &&
      m.image?.digest === image.manifestDigest &&
      m.imageLayers?.join(':') === image.layerDirs.join(':');
    const have = await readManifest(dir);
    if (same(have)) return have as TemplateManifest;
    // Made over layer dirs that are gone (another layer cache): made again, unless stacked on.
    if (have?.kind === 'image') await this.deleteTemplate(name);
    else if (have) throw new AlreadyExistsError(`template "${name}" exists and is not from image ${image.reference}`);
    await mkdir(this.imagesDir, { recursive: true });
    const lock = await acquireLock(join(this.imagesDir, `.${name}.lock`));
    const tmp = join(this.imagesDir, `.build-${name}-${process.pid}`);
    try {
      const done = await readManifest(dir);
      if (same(done)) return done as TemplateManifest;
      if (done && done.kind !== 'image')
        throw new AlreadyExistsError(`template "${name}" exists and is not from image ${image.reference}`);
      await removeTree(tmp);
      await mkdir(join(tmp, LAYER_DIR), { recursive: true });
      let report: ImageRootReport = { replaced: [] };
      await this.buildOverDirs(image.layerDirs, tmp, async (root) => {
        report = await prepareImageRoot(root);
      });
      if (report.replaced.length)
        onProgress(`${name}: replaced non-directories the runtime mounts on: ${report.replaced.join(', ')}`);
      if (report.addedUser) onProgress(`${name}: added the account "user" (uid ${report.addedUser.uid})`);
      await shiftOwnership(join(tmp, LAYER_DIR));
      // The layer's root directory is the merged root's: root's, 0755, whatever the image says.
      await chown(join(tmp, LAYER_DIR), HOST_ID_BASE, HOST_ID_BASE);
      await chmod(join(tmp, LAYER_DIR), 0o755);
      const manifest: TemplateManifest = {
        name,
        kind: 'image',
        parent: null,
        layers: [name],
        imageLayers: image.layerDirs,
        image: { reference: image.reference, digest: image.manifestDigest, defaults: image.defaults },
        runtimes: ['namespace'],
        created_at: new Date().toISOString(),
        size: await diskUsageBytes(join(tmp, LAYER_DIR)),
      };
      await writeManifest(tmp, manifest);
      if (done) await removeTree(dir); // a stale one another process had made meanwhile
      await rename(tmp, dir);
      this.known.set(name, manifest);
      return manifest;
    } catch (err) {
      await removeTree(tmp).catch(() => undefined);
      throw err;
    } finally {
      await lock.release();
    }
  }

  /** Deletes a snapshot template nobody builds on. Base templates are refused (they are rebuilt on demand anyway). */
  async deleteTemplate(name: string): Promise<void> {
    const dir = this.templateDir(name);
    const m = await readManifest(dir);
    if (!m) throw new NotFoundError(`template "${name}" does not exist`);
    if (m.kind === 'base')
      throw new FailedPreconditionError(`template "${name}" is a base template and cannot be deleted`);
    const users = (await this.listTemplates()).filter(
      (t) => t.name !== name && (t.parent === name || t.layers.includes(name)),
    );
    if (users.length > 0) {
      throw new FailedPreconditionError(
        `template "${name}" is used by ${users.map((u) => `"${u.name}"`).join(', ')}: delete those first`,
      );
    }
    this.known.delete(name);
    // Rename first so a half-deleted template is never visible under its name.
    const doomed = join(this.imagesDir, `.delete-${name}-${process.pid}-${Date.now()}`);
    await rename(dir, doomed);
    await removeTree(doomed);
  }

  /**
   * Makes template `name` from a capsule's upper layer stacked on `parent`'s layers. The copy
   * keeps ownership (already in the capsule id range), modes, xattrs (overlay opaque markers)
   * and whiteouts (0/0 character devices), which overlayfs honours in lower layers too.
   */
  async snapshotFromCapsule(opts: SnapshotFromCapsuleOptions): Promise<TemplateManifest> {
    const dir = this.templateDir(opts.name);
    const parent = await readManifest(this.templateDir(opts.parent));
    if (!parent) throw new NotFoundError(`parent template "${opts.parent}" does not exist`);
    await access(opts.upperDir).catch(() => {
      throw new Error(`capsule upper layer ${opts.upperDir} does not exist`);
    });
    await mkdir(this.imagesDir, { recursive: true });
    const lock = await acquireLock(join(this.imagesDir, `.${opts.name}.lock`));
    const tmp = join(this.imagesDir, `.build-${opts.name}-${process.pid}`);
    try {
      if (await readManifest(dir))
        throw new AlreadyExistsError(`template "${opts.name}" already exists: pick another name or delete it first`);
      await removeTree(tmp);
      await mkdir(tmp, { recursive: true });
      await run('cp', ['-a', '--one-file-system', '--', opts.upperDir, join(tmp, LAYER_DIR)]).catch(
        (err: Error & { stderr?: string }) => {
          throw new Error(`copying the capsule layer failed: ${err.stderr || err.message}`);
        },
      );
      // The layer's root directory becomes a directory of the merged root: keep it root's, 0755.
      await chown(join(tmp, LAYER_DIR), HOST_ID_BASE, HOST_ID_BASE);
      await chmod(join(tmp, LAYER_DIR), 0o755);
      const manifest: TemplateManifest = {
        name: opts.name,
        kind: 'snapshot',
        parent: parent.name,
        layers: [opts.name, ...parent.layers],
        runtimes: opts.runtimes ?? ['namespace'],
        created_at: new Date().toISOString(),
        size: await diskUsageBytes(join(tmp, LAYER_DIR)),
        ...(parent.imageLayers ? { imageLayers: parent.imageLayers } : {}),
        ...capsuleFeatures(parent), // a snapshot runs under the same seccomp switches
      };
      await writeManifest(tmp, manifest);
      await rename(tmp, dir);
      return manifest;
    } catch (err) {
      await removeTree(tmp).catch(() => undefined);
      throw err;
    } finally {
      await lock.release();
    }
  }
}
