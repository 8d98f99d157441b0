// A template recipe builds one base layer into an empty directory, as host root, with the ids
// it would have on a normal system (0 = root); the store shifts ownership afterwards.
export type ProgressFn = (message: string) => void;

export interface TemplateRecipe {
  /** One line for listings and logs. */
  description: string;
  /**
   * A built-in template this one is stacked on. The store builds it first, mounts an overlay of its
   * layers with this template's (empty) layer on top, and hands build() the merged root: what the
   * recipe changes lands in this template's own layer.
   */
  parent?: string;
  /**
   * Everything the build depends on besides its code's shape (packages, suite, a revision number to
   * bump when a build step changes), JSON-serialisable. Its hash (with the parent's) is the recipe's
   * version, stored in the built template's manifest: a cached build of another version is rebuilt
   * beside the old one (template-store.ts). Default: the description.
   */
  inputs?: unknown;
  /**
   * The inputs this recipe had before recipe versions existed (their builds' manifests have no
   * version), when its builds of then are still good: they are taken as of that version instead of
   * being rebuilt. Leave it as it is when `inputs` change: the old builds are then rebuilt.
   */
  inputsBeforeVersions?: unknown;
  /** TCP ports a service of the template listens on inside a capsule; the agent hands a capsule out once they accept. */
  readyPorts?: number[];
  build(rootfs: string, onProgress: ProgressFn): Promise<void>;
}
