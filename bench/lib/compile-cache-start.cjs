'use strict';
// A variant of envd's start file for bench/envd-compile-cache.mjs: the same builtins-then-flags
// order as packages/envd/bundle/start.cjs, but envd.cjs is loaded by require() under node's own
// module compile cache (module.enableCompileCache, Node >= 22.1) instead of start.cjs's V8 code
// cache. WRENN_ENVD_PRIME_COMPILE_CACHE=1: on SIGUSR2 flush the cache (what envd compiled so far) and exit.
const { enableCompileCache, flushCompileCache } = require('node:module');
const { join } = require('node:path');

const BUILTINS = [];
const FLAGS = '';
for (const name of BUILTINS) require(name);
void process.stderr;
if (FLAGS) require('node:v8').setFlagsFromString(FLAGS);
const r = enableCompileCache(join(__dirname, 'compile-cache'));
if (r.status === 3 /* FAILED */) process.stderr.write(`envd: compile cache failed: ${r.message}\n`);
if (process.env.WRENN_ENVD_PRIME_COMPILE_CACHE) {
  delete process.env.WRENN_ENVD_PRIME_COMPILE_CACHE;
  process.once('SIGUSR2', () => {
    flushCompileCache();
    process.exit(0);
  });
}
require('./envd.cjs');
