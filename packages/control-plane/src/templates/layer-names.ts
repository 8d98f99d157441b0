// Names of the cached build layers (one snapshot template per RUN/COPY step): internal, hidden from
// template and snapshot listings.
const LAYER_PREFIX = 'layer-';

export const layerName = (key: string): string => `${LAYER_PREFIX}${key.slice(0, 40)}`;
export const isLayerName = (name: string): boolean => name.startsWith(LAYER_PREFIX);

const KEPT_PREFIX = 'kept-';

/** A template a tag still points at after a newer build of its name replaced it (services/tagged-builds.ts). */
export const keptBuildName = (buildId: string): string => `${KEPT_PREFIX}${buildId}`;
export const isKeptBuildName = (name: string): boolean => name.startsWith(KEPT_PREFIX);
export const buildIdOfKeptName = (name: string): string => name.slice(KEPT_PREFIX.length);
