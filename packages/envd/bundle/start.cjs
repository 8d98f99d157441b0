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
sayReadyOnceListening();
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

/**
 * Inside a capsule the init waits for "ready" on WRENN_READY_FD and the create waits for the init.
 * envd says it as soon as its port accepts connections: right after node's own start, before node's
 * modules and the bundle load (21-26 ms of CPU, most of envd's start after node's bootstrap). The
 * kernel queues connections in the listen backlog meanwhile, so a request sent after "ready" is
 * answered once envd serves, and envd loads while the create's answer travels back to its client
 * (agent, control plane, SDK) instead of before it. The socket is the addon's (listenTcp:
 * close-on-exec) and goes to the bundle's listen through a global (net/bound-socket.ts takes it for
 * that very host and port). A bind error, or no addon, and the bundle binds and says ready itself
 * after listening, as with WRENN_ENVD_EARLY_READY=0 or WRENN_BOUND_SOCKET=0 (for comparisons).
 * What changes: envd failing while it loads now fails the capsule after its create returned (the
 * agent's exit watch reports it) rather than failing the create.
 */
function sayReadyOnceListening() {
  const env = process.env;
  const readyFd = env.WRENN_READY_FD;
  if (!readyFd || !/^\d+$/.test(readyFd) || env.WRENN_ENVD_EARLY_READY === '0' || env.WRENN_BOUND_SOCKET === '0')
    return;
  // The arguments main.ts reads; only an explicit --port (the runtimes always give one).
  const flag = (name) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const portText = flag('--port');
  if (!portText || !/^\d{1,5}$/.test(portText) || Number(portText) > 65535) return;
  const port = Number(portText);
  const host = flag('--host') || (env.WRENN_ENVD_HOST ?? '0.0.0.0'); // main.ts's very rule
  let fd;
  try {
    const addon = createRequire(file)('@wrenn/native/addon');
    if (typeof addon.listenTcp !== 'function') return;
    fd = addon.listenTcp(host, port, 511);
  } catch {
    return; // the bundle's own listen reports what is wrong
  }
  if (typeof fd !== 'number') return; // a host the addon does not bind: node's listen does it
  globalThis[Symbol.for('wrenn.envd.boundSocket')] = { fd, host, port };
  delete env.WRENN_READY_FD;
  const { closeSync, writeSync } = require('node:fs');
  try {
    writeSync(Number(readyFd), 'ready\n');
  } catch {
    // the init is gone or polls /health instead
  }
  try {
    closeSync(Number(readyFd));
  } catch {
    // already closed
  }
}
