// Templates on disk: <imagesDir>/<name>/{manifest.json, rootfs/}. A base template is built from
// a recipe on first use (one build at a time, atomically renamed into place); a snapshot template
// is a capsule's upper layer stacked over its parent's layers; an image template is a small layer
// over a container image's cached layers (oci/), which it and its snapshots use in place.
//
// Recipe versions: a base template's manifest records its recipe's version (a hash of the recipe's
// `inputs` and its parent's version). A cached build of another version (or of none: built before
// versions) is rebuilt on next use, and the old layer is left where it is, because what was made on
// it names it: snapshot templates by layer id, paused and hibernated capsules by path. The rebuild
// goes to <imagesDir>/<name>.v<version>/rootfs and <name>/manifest.json then points at it; templates
// stacked on the old build keep the old layer, a recipe template on it (code-interpreter-v1 on base)
// is rebuilt too, its version containing its parent's. removeUnusedLayers() deletes an old layer
// once no template and no capsule uses it (the agent calls it at start).

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { access, chmod, chown, mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import { AlreadyExistsError, FailedPreconditionError, NotFoundError } from '@wrenn/protocol';
import { touch } from '../oci/image-gc.js';
import type { PulledImage } from '../oci/image-pull.js';
import type { RuntimeName } from '../runtimes/runtime.js';
import { baseRecipe } from './base-recipe.js';
import { acquireLock } from './build-lock.js';
import { CODE_INTERPRETER_TEMPLATE, codeInterpreterRecipe } from './code-interpreter-recipe.js';
import { diskUsageBytes } from './disk-usage.js';
import { HOST_ID_BASE } from './id-map.js';
import { type ImageRootReport, prepareImageRoot } from './image-root.js';
import {
  assertNewTemplateName,
  capsuleFeatures,
  LAYER_DIR,
  MANIFEST_FILE,
  readManifest,
  replaceManifest,
  type TemplateManifest,
  VERSIONED_LAYER,
  validateLayerId,
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
  /**
   * The capsule's lower layer directories (top first), when it has them: the snapshot stacks on
   * exactly those, which may be an older build of `parent` than its current one (recipe versions).
   * Default: `parent`'s current layers.
   */
  lowerDirs?: string[];
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

function versionOf(inputs: unknown, parentVersion: string | null): string {
  return createHash('sha256')
    .update(JSON.stringify({ inputs, parent: parentVersion }))
    .digest('hex')
    .slice(0, 16);
}

/** Beside a versioned layer (<name>.v<version>/): what built it; its presence says the layer is whole. */
const LAYER_INFO = 'layer.json';

interface LayerInfo {
  template: string;
  recipe: string;
  created_at: string;
  size: number;
}

const stderrProgress: ProgressFn = (m) => process.stderr.write(`[wrenn template] ${m}\n`);

export class TemplateStore {
  readonly imagesDir: string;
  private readonly recipes: Record<string, TemplateRecipe>;
  // Manifests change only by delete + create, or by a rebuild after a recipe change, which this
  // process does itself (it sets the entry): capsule creation skips re-reading them; deleteTemplate
  // drops the entry. A store of another process holding an older manifest still finds its layers:
  // old layers are kept while anything uses them.
  private readonly known = new Map<string, TemplateManifest>();
  private readonly versions = new Map<string, string>();

  constructor(opts: TemplateStoreOptions) {
    if (!opts?.imagesDir) throw new Error('TemplateStore needs imagesDir (e.g. /var/lib/wrenn/images)');
    this.imagesDir = resolve(opts.imagesDir);
    this.recipes = { ...(opts.recipes ?? DEFAULT_RECIPES) };
  }

  templateDir(name: string): string {
    validateTemplateName(name);
    return join(this.imagesDir, name);
  }

  /** Directory of a layer id (a template name, or `<name>.v<version>` for a rebuilt base layer). */
  layerDir(id: string): string {
    validateLayerId(id);
    return join(this.imagesDir, id);
  }

  /**
   * The version of recipe `name`: 16 hex digits of a hash of its inputs (or description) and its
   * parent's version, so a changed base makes the templates built on it stale too.
   */
  recipeVersion(name: string): string {
    const have = this.versions.get(name);
    if (have) return have;
    const recipe = this.recipes[name];
    if (!recipe) throw new Error(`no recipe for template "${name}"`);
    const parent = recipe.parent && this.recipes[recipe.parent] ? this.recipeVersion(recipe.parent) : null;
    const v = versionOf(recipe.inputs ?? recipe.description, parent);
    this.versions.set(name, v);
    return v;
  }

  /** The version a build without one (made before versions) is of: see inputsBeforeVersions. */
  private versionBeforeVersions(name: string): string | undefined {
    const recipe = this.recipes[name];
    if (recipe?.inputsBeforeVersions === undefined) return undefined;
    // A parent's build of then counts only if the parent's is still good too.
    const parent = recipe.parent ? this.versionBeforeVersions(recipe.parent) : null;
    return parent === undefined ? undefined : versionOf(recipe.inputsBeforeVersions, parent);
  }

  /** A base template whose cached build is not of its recipe's current version. */
  private stale(m: TemplateManifest): boolean {
    if (m.kind !== 'base' || this.recipes[m.name] === undefined) return false;
    return (m.recipe ?? this.versionBeforeVersions(m.name)) !== this.recipeVersion(m.name);
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
    if (have && !this.stale(have)) {
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
      const version = this.recipeVersion(name);
      const done = await readManifest(dir); // built by whoever held the lock before us
      if (done && !this.stale(done)) return done;
      if (done && done.kind !== 'base')
        throw new AlreadyExistsError(`template "${name}" exists and is not built from the recipe of that name`);
      // Only the lock holder builds, so any earlier partial build is a crash's leftover.
      for (const n of await readdir(this.imagesDir)) {
        if (n.startsWith(`.build-${name}-`)) await removeTree(join(this.imagesDir, n));
      }
      // A first build goes to <name>/ as it always did; a rebuild beside the old layer (header).
      const layerId = done ? `${name}.v${version}` : name;
      if (done)
        onProgress(
          `${name}: the recipe changed since the cached build (version ${done.recipe ?? 'none'} -> ${version}); rebuilding it as layer ${layerId}, and keeping the old layer for what was made on it`,
        );
      const parent = recipe.parent ? await this.ensureTemplate(recipe.parent, { onProgress }) : undefined;
      const manifestOf = (info: Omit<LayerInfo, 'template' | 'recipe'>): TemplateManifest => ({
        name,
        kind: 'base',
        parent: parent?.name ?? null,
        layers: [layerId, ...(parent?.layers ?? [])],
        recipe: version,
        runtimes: ['namespace'],
        created_at: info.created_at,
        size: info.size,
        ...(recipe.readyPorts?.length ? { readyPorts: recipe.readyPorts } : {}),
      });
      // The same version built before (a downgrade and upgrade again): that layer is whole, reuse it.
      const reused = done ? await this.readLayerInfo(layerId) : undefined;
      if (done && reused?.recipe === version) {
        const manifest = manifestOf(reused);
        await replaceManifest(dir, manifest);
        onProgress(`${name}: reusing layer ${layerId}, built ${reused.created_at}`);
        return manifest;
      }
      const tmp = join(this.imagesDir, `.build-${name}-${process.pid}`);
      const started = Date.now();
      try {
        await mkdir(join(tmp, LAYER_DIR), { recursive: true });
        onProgress(`${name}: building (${recipe.description})`);
        if (parent) await this.buildOver(parent, tmp, (root) => recipe.build(root, onProgress));
        else await recipe.build(join(tmp, LAYER_DIR), onProgress);
        onProgress(`${name}: shifting file ownership into the capsule id range (uid + ${HOST_ID_BASE})`);
        await shiftOwnership(join(tmp, LAYER_DIR));
        const manifest = manifestOf({
          created_at: new Date().toISOString(),
          size: await diskUsageBytes(join(tmp, LAYER_DIR)),
        });
        if (done) {
          // The layer alone (rename is atomic: a <name>.v<version> dir is always whole), then the
          // manifest that points at it.
          const info: LayerInfo = {
            template: name,
            recipe: version,
            created_at: manifest.created_at,
            size: manifest.size,
          };
          await writeFile(join(tmp, LAYER_INFO), `${JSON.stringify(info, null, 2)}\n`);
          await removeTree(this.layerDir(layerId)); // a layer.json-less leftover (reused above otherwise)
          await rename(tmp, this.layerDir(layerId));
          await replaceManifest(dir, manifest);
        } else {
          await writeManifest(tmp, manifest);
          await rename(tmp, dir);
        }
        this.known.set(name, manifest);
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

  private async readLayerInfo(id: string): Promise<LayerInfo | undefined> {
    try {
      const info = JSON.parse(await readFile(join(this.layerDir(id), LAYER_INFO), 'utf8')) as LayerInfo;
      return typeof info?.recipe === 'string' && typeof info.created_at === 'string' ? info : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Layers of base templates that no template uses any more (left by rebuilds after recipe
   * changes): <name>.v<version> dirs and a first build's <name>/rootfs once its manifest points
   * elsewhere. Returns their rootfs directories. Capsules are not looked at: see removeUnusedLayers.
   */
  async unusedLayers(): Promise<string[]> {
    const templates = await this.listTemplates();
    const used = new Set(templates.flatMap((t) => t.layers));
    const out: string[] = [];
    for (const t of templates) {
      if (t.kind === 'base' && !used.has(t.name) && existsSync(join(this.layerDir(t.name), LAYER_DIR)))
        out.push(join(this.layerDir(t.name), LAYER_DIR));
    }
    for (const n of await readdir(this.imagesDir).catch(() => [] as string[])) {
      const of = VERSIONED_LAYER.exec(n)?.[1];
      // A versioned layer of a base template (a template's dir has a manifest instead).
      if (of === undefined || used.has(n) || !existsSync(join(this.imagesDir, n, LAYER_INFO))) continue;
      if (existsSync(join(this.imagesDir, n, MANIFEST_FILE))) continue;
      out.push(join(this.imagesDir, n, LAYER_DIR));
    }
    return out.sort();
  }

  /**
   * Deletes the unused layers (unusedLayers) that `inUse` says no capsule needs: it gets each
   * layer's rootfs directory (capsules name their lower layers by path). Only the owner of the
   * images dir may call this: capsules of other agents sharing it are not known here. Holds each
   * template's build lock meanwhile. Returns the directories removed.
   */
  async removeUnusedLayers(inUse: (layerDir: string) => boolean): Promise<string[]> {
    const removed: string[] = [];
    for (const dir of await this.unusedLayers()) {
      if (inUse(dir)) continue;
      const id = dir.slice(this.imagesDir.length + 1, -(LAYER_DIR.length + 1));
      const versioned = VERSIONED_LAYER.exec(id);
      const name = versioned?.[1] ?? id;
      const lock = await acquireLock(join(this.imagesDir, `.${name}.lock`));
      try {
        if (!(await this.unusedLayers()).includes(dir)) continue; // used meanwhile
        // Rename first so a half-deleted layer is never visible under its id.
        const doomed = join(this.imagesDir, `.delete-${id}-${process.pid}-${Date.now()}`);
        await rename(versioned ? this.layerDir(id) : dir, doomed);
        await removeTree(doomed);
        removed.push(dir);
      } finally {
        await lock.release();
      }
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
    const dirs = [...manifest.layers.map((n) => join(this.layerDir(n), LAYER_DIR)), ...(manifest.imageLayers ?? [])];
    // Synchronous: one stat per layer on every create costs less than a thread-pool round trip.
    for (const [i, d] of dirs.entries()) {
      if (!existsSync(d))
        throw new Error(`template "${manifest.name}" is broken: its layer "${names[i]}" (${d}) is missing`);
    }
    return dirs;
  }

  /** Layer ids (and container image layer dirs under them) of a capsule's lower directories. */
  private layersOfDirs(dirs: string[]): Pick<TemplateManifest, 'layers' | 'imageLayers'> {
    const layers: string[] = [];
    const imageLayers: string[] = [];
    for (const d of dirs) {
      const rel = relative(this.imagesDir, d);
      const id = /^([^/]+)\/rootfs$/.exec(rel)?.[1];
      if (id !== undefined && !imageLayers.length) {
        validateLayerId(id);
        layers.push(id);
      } else imageLayers.push(d);
    }
    if (!layers.length) throw new Error(`the capsule's layers ${dirs.join(':')} are not in ${this.imagesDir}`);
    return { layers, ...(imageLayers.length ? { imageLayers } : {}) };
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
    assertNewTemplateName(name);
    const dir = this.templateDir(name);
    const same = (m: TemplateManifest | undefined) =>
      m?.kind === 'image' &&
      m.image?.digest === image.manifestDigest &&
      m.imageLayers?.join(':') === image.layerDirs.join(':');
    const have = await readManifest(dir);
    if (same(have)) {
      await touch(dir); // its last use, for the image cache's garbage collection
      return have as TemplateManifest;
    }
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
    assertNewTemplateName(opts.name);
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
      const lower = opts.lowerDirs ? this.layersOfDirs(opts.lowerDirs) : parent;
      const manifest: TemplateManifest = {
        name: opts.name,
        kind: 'snapshot',
        parent: parent.name,
        layers: [opts.name, ...lower.layers],
        runtimes: opts.runtimes ?? ['namespace'],
        created_at: new Date().toISOString(),
        size: await diskUsageBytes(join(tmp, LAYER_DIR)),
        ...(lower.imageLayers?.length ? { imageLayers: lower.imageLayers } : {}),
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
