// What scripts/bundle-envd.mjs writes into packages/envd/dist/bundle and how capsules start it.
// Kept here (and imported by the host agent) so the code cache is built with the very flags envd
// runs with: V8 rejects a code cache made under other V8 flags.

/** The start file inside the bundle folder: loads envd.cjs with its V8 code cache. */
export const ENVD_START = 'start.cjs';

/**
 * Node flags for envd inside capsules. A small young generation keeps an idle envd's memory low.
 * An 8x interrupt budget (V8's default is 67584) makes V8 wait longer before optimizing a function:
 * the loops that run once at start (protobuf descriptors) are then not sent to TurboFan, which
 * saves ~30 ms of compiler CPU per start and ~4.5 MB RSS (compiler pages never touched); code that
 * stays hot (command and file streams) is still optimized, just a little later.
 */
export const ENVD_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--interrupt-budget=540000'];
