// Root filesystems for capsules: templates (base layers built from recipes, snapshot layers
// from capsules) stored under <WRENN_DIR>/images, and the host id range their files belong to.
export { TemplateStore, DEFAULT_RECIPES } from './template-store.js';
export type { TemplateStoreOptions, EnsureOptions, SnapshotFromCapsuleOptions } from './template-store.js';
export type { TemplateManifest, TemplateKind } from './manifest.js';
export { validateTemplateName } from './manifest.js';
export type { TemplateRecipe, ProgressFn } from './recipe.js';
export { minimalRecipe } from './minimal-recipe.js';
export { baseRecipe } from './base-recipe.js';
export { findDebianMirror } from './debian-mirror.js';
export { HOST_ID_BASE, ID_RANGE, idMapLine, hostId } from './id-map.js';
export { diskUsageBytes } from './disk-usage.js';
export { removeTree, unmountUnder, mountsUnder } from './remove-tree.js';
