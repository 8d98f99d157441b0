// A template recipe builds one base layer into an empty directory, as host root, with the ids
// it would have on a normal system (0 = root); the store shifts ownership afterwards.
export type ProgressFn = (message: string) => void;

export interface TemplateRecipe {
  /** One line for listings and logs. */
  description: string;
  build(rootfs: string, onProgress: ProgressFn): Promise<void>;
}
