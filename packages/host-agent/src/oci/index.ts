// Container images from OCI registries as template bases: pull, verify, unpack, cache by layer.
export type { ImageDefaults } from './image-manifest.js';
export { ociCacheDir, type PulledImage, type PullOptions, type PullProgress, pullImage } from './image-pull.js';
export { type ImageReference, parseImageReference } from './image-ref.js';
export {
  ensureImageTemplate,
  type ImageTemplate,
  type ImageTemplateOptions,
  imageTemplateName,
  pullProgressLines,
} from './image-template.js';
export type { RegistryCredentials } from './registry-client.js';
