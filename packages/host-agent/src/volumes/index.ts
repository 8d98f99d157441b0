// Volumes of this host: storage (volume-store.ts) and the content API's file operations (volume-content.ts).
export { type VolumeContentOp, type VolumeEntryInfo, volumeContent } from './volume-content.js';
export { VolumeStore } from './volume-store.js';
