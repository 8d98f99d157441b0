// Names of the cached build layers (one snapshot template per RUN/COPY step): internal, hidden from
// template and snapshot listings.
const LAYER_PREFIX = 'layer-';

export const layerName = (key: string): string => `${LAYER_PREFIX}${key.slice(0, 40)}`;
export const isLayerName = (name: string): boolean => name.startsWith(LAYER_PREFIX);
