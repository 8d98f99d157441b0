'use strict';
// Starts envd's bundle (envd.cjs, next to this file) with the V8 code cache scripts/bundle-envd.mjs
// made at build time (envd.v8cache): envd then skips compiling its code, at start and on the first
// requests. Node 20 has no built-in compile cache; on 22 and 24 node's own one
// (module.enableCompileCache) made envd ready 20-25 ms later than this loader does
// (bench/envd-compile-cache.mjs), so this stays. A cache made by another node or under other V8
// flags is rejected by V8; envd then compiles as usual and says so once.
// WRENN_ENVD_WRITE_CODE_CACHE=<file> (build time only): on SIGUSR2 write the cache and exit.
const { readFileSync, writeFileSync } = require('node:fs');
const { createRequire } = require('node:module');
const { join } = require('node:path');
const { Script } = require('node:vm');

// Node's own modules first, under default V8 flags: node accepts its embedded code cache for them
// only then (any flag on the command line costs ~20 ms of compiling them, a third of a capsule's
// envd start). The bundle's tuning flags are set right after, at run time. Both lists are written
// here by scripts/bundle-envd.mjs (BUILTINS from the bundle's own requires, FLAGS = envdV8Flags()).
const BUILTINS = [];
const FLAGS = '';
const file = join(__dirname, 'envd.cjs');
for (const name of BUILTINS) require(name);
// Also the stream behind stderr, which envd's first log line would otherwise load.
void process.stderr;
if (FLAGS) require('node:v8').setFlagsFromString(FLAGS);

let cachedData;
try {
  cachedData = readFileSync(join(__dirname, 'envd.v8cache'));
} catch {
  // no cache: compile as usual
}
const wrapped = `(function (exports, require, module, __filename, __dirname) {${readFileSync(file, 'utf8')}\n})`;
const script = new Script(wrapped, { filename: file, cachedData });
if (cachedData && script.cachedDataRejected) {
  process.stderr.write(
    'envd: code cache rejected (another node binary or other V8 flags than at build time); compiling instead\n',
  );
}
cachedData = undefined; // V8 has what it needs; do not keep ~400 KB alive for envd's lifetime
const cacheOut = process.env.WRENN_ENVD_WRITE_CODE_CACHE;
if (cacheOut) {
  delete process.env.WRENN_ENVD_WRITE_CODE_CACHE;
  process.once('SIGUSR2', () => {
    writeFileSync(cacheOut, script.createCachedData());
    process.exit(0);
  });
}
const module_ = { exports: {} };
script.runInThisContext()(module_.exports, createRequire(file), module_, file, __dirname);
