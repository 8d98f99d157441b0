// Root filesystems for capsules: templates (base layers built from recipes, snapshot layers
// from capsules) stored under <WRENN_DIR>/images, and the host id range their files belong to.

export { baseRecipe } from './base-recipe.js';
export { CODE_INTERPRETER_PORT, CODE_INTERPRETER_TEMPLATE, codeInterpreterRecipe } from './code-interpreter-recipe.js';
export { findDebianMirror } from './debian-mirror.js';
export { diskUsageBytes } from './disk-usage.js';
export { HOST_ID_BASE, hostId, ID_RANGE, idMapLine } from './id-map.js';
export type { TemplateKind, TemplateManifest } from './manifest.js';
export { validateTemplateName } from './manifest.js';
export { minimalRecipe } from './minimal-recipe.js';
export type { ProgressFn, TemplateRecipe } from './recipe.js';
export { mountsUnder, removeTree, unmountUnder } from './remove-tree.js';
export type { EnsureOptions, SnapshotFromCapsuleOptions, TemplateStoreOptions } from './template-store.js';
export { DEFAULT_RECIPES, TemplateStore } from './template-store.js';
