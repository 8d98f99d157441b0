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
  /** TCP ports a service of the template listens on inside a capsule; the agent hands a capsule out once they accept. */
  readyPorts?: number[];
  build(rootfs: string, onProgress: ProgressFn): Promise<void>;
}
