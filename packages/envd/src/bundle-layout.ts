// What scripts/bundle-envd.mjs writes into packages/envd/dist/bundle and how capsules start it.
// Kept here (and imported by the host agent) so the code cache is built with the very flags envd
// runs with: V8 rejects a code cache made under other V8 flags.

/** The start file inside the bundle folder: loads envd.cjs with its V8 code cache. */
export const ENVD_START = 'start.cjs';

/**
 * Node flags on envd's command line inside capsules: none. A V8 flag there makes node reject the
 * code cache embedded for its own modules, and compiling them costs ~20 ms of every capsule start.
 */
export const ENVD_NODE_FLAGS: readonly string[] = [];

/**
 * V8 flags start.cjs sets at run time, once node's own modules are loaded (and before envd's bundle
 * and its code cache, which is made under them). An 8x interrupt budget (V8's default is 67584)
 * makes V8 wait longer before optimizing a function: the loops that run once at start (protobuf
 * descriptors) are then not sent to TurboFan, which saves ~30 ms of compiler CPU per start and
 * ~4.5 MB RSS (compiler pages never touched); code that stays hot (command and file streams) is
 * still optimized, just a little later. (--max-semi-space-size, which only works on the command
 * line, was dropped for the start-up time: it saved ~1 MB.)
 * V8 12 (Node 22 and later) counts invocations instead of an interrupt budget and refuses that flag
 * ("unrecognized flag" on stderr): there envd sets none. Chosen by the node that builds the bundle,
 * which is the node that runs it (the code cache is only accepted by that same node).
 */
export function envdV8Flags(v8Version: string = process.versions.v8): readonly string[] {
  return Number.parseInt(v8Version, 10) < 12 ? ['--interrupt-budget=540000'] : [];
}
