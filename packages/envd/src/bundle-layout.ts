// What scripts/bundle-envd.mjs writes into packages/envd/dist/bundle and how capsules start it.
// Kept here (and imported by the host agent) so the code cache is built with the very flags envd
// runs with: V8 rejects a code cache made under other V8 flags.

/** The start file inside the bundle folder: loads envd.cjs with its V8 code cache. */
export const ENVD_START = 'start.cjs';

/** Node flags for envd inside capsules: a small young generation keeps an idle envd's memory low. */
export const ENVD_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1'];
