#!/usr/bin/env node
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
// Bundles envd into one CommonJS file (packages/envd/dist/bundle/envd.cjs) so a capsule's envd loads
// one file instead of resolving hundreds of modules: capsule start time is mostly envd's start time.
// Then starts it once, warms up the paths a new capsule takes (health, /init, a command, stat,
// list) and saves V8's code cache of the compiled functions (envd.v8cache); start.cjs loads the
// bundle with that cache, so envd skips most compiling at start and on its first requests.
// envd.mjs is the same entry as ES module, for images that run `node envd.mjs`.
// Native addons (node-pty, loaded on the first PTY; @wrenn/native for starting pipe processes and
// for file calls made as the requesting user, metadata included) stay external
// and are copied next to the bundle, so a capsule needs only this folder and the node binary.
// code-interpreter/ holds what code-interpreter-v1 capsules run: the server (a second entry,
// server.cjs), the files its kernels load, and sucrase for TypeScript cells.
import { build } from 'esbuild';
import { envdListening } from './lib/envd-listening.mjs';
import { predecodedDescriptors } from './lib/predecoded-descriptors.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// WRENN_ENVD_BUNDLE_OUT: another folder (bench/capsule-envd-lines.mjs makes one bundle per node line).
const out = process.env.WRENN_ENVD_BUNDLE_OUT ?? join(root, 'packages/envd/dist/bundle');
const { ENVD_NODE_FLAGS, ENVD_START, envdV8Flags } = await import(
  pathToFileURL(join(root, 'packages/envd/dist/src/bundle-layout.js')).href
);
const NATIVE = [
  { name: 'node-pty', dirs: ['node-pty'] },
  // envd loads only the compiled addon (require('@wrenn/native/addon'), for its vfork-style spawn).
  // Only the addon stays external: the package's plain JS (spawn-results, native-child) is bundled.
  { name: '@wrenn/native', external: '@wrenn/native/addon', dirs: ['@wrenn/native'] },
];
// Only what node-pty needs at run time: its JS and the compiled addon.
const PARTS = {
  'node-pty': ['package.json', 'lib', 'build/Release/pty.node', 'build/Release/spawn-helper'],
  '@wrenn/native': ['package.json', 'build/Release/wrenn_native.node'],
};
// The code-interpreter server's packages (added to envd's package.json; a tree updated by a pull
// may not have them installed yet).
for (const dep of ['zeromq', 'sucrase']) {
  if (!existsSync(join(root, 'node_modules', dep, 'package.json')))
    throw new Error(`${dep} is not installed (envd's code-interpreter server needs it): run npm install`);
}
rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'node_modules'), { recursive: true });
await build({
  entryPoints: [join(root, 'packages/envd/dist/src/main.js')],
  outfile: join(out, 'envd.cjs'),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minify: true,
  sourcemap: false,
  external: NATIVE.map((n) => n.external ?? n.name),
  logLevel: 'warning',
  // import() of node-pty etc. becomes require(): start.cjs runs the bundle as a vm.Script, which
  // has no ES module loader for dynamic imports.
  supported: { 'dynamic-import': false },
  // envd uses import.meta.url only for createRequire(), which takes the file's path as well
  // (building a file: URL at load costs ~1 ms of every start); checked below.
  // WRENN_ENVD_BUNDLE: lite-headers.ts leaves the global Headers alone in the bundle, where every
  // free `Headers` is LiteHeaders (inject): touching the global loads undici on Node 22+ (checked below).
  define: { 'import.meta.url': '__filename', WRENN_ENVD_BUNDLE: 'true' },
  inject: [join(root, 'packages/envd/dist/src/lite-headers.js')],
  // Protobuf file descriptors decoded here, not at every start (see the plugin).
  plugins: [predecodedDescriptors({ helper: join(root, 'packages/envd/dist/src/proto/file-desc-decoded.js') })],
});
for (const use of ['fileURLToPath)(__filename', 'fileURLToPath(__filename', 'URL(__filename']) {
  if (readFileSync(join(out, 'envd.cjs'), 'utf8').includes(use)) {
    throw new Error(`envd.cjs uses import.meta.url as a URL (${use}); it is the bundle's path there (see define)`);
  }
}
// With every descriptor predecoded, descriptor.proto's own (booted at load by fileDesc) is left out.
if (readFileSync(join(out, 'envd.cjs'), 'utf8').includes('google/protobuf/descriptor.proto')) {
  throw new Error(
    'envd.cjs still boots descriptor.proto: some fileDesc() call was not predecoded (scripts/lib/predecoded-descriptors.mjs)',
  );
}
addonByPath();
writeStartFile();
writeFileSync(
  join(out, 'envd.mjs'),
  `// envd as an ES module entry: the same as \`node ${ENVD_START}\`.\nimport { createRequire } from 'node:module';\ncreateRequire(import.meta.url)('./${ENVD_START}');\n`,
);
for (const { name, dirs } of NATIVE) {
  for (const dir of dirs) {
    for (const part of PARTS[dir] ?? ['']) {
      const from = join(root, 'node_modules', dir, part);
      if (existsSync(from)) cpSync(from, join(out, 'node_modules', dir, part), { recursive: true });
    }
  }
  if (!existsSync(join(out, 'node_modules', name, 'package.json')))
    throw new Error(`${name} is not installed: run npm install`);
}
// The kernels' own files (node_kernel.cjs, kernel_startup.py, charts.py) ship with the bundle,
// so capsules always run this install's version whatever template layer they start from.
cpSync(join(root, 'packages/envd/code-interpreter'), join(out, 'code-interpreter'), {
  recursive: true,
  filter: (src) => !src.includes('__pycache__'),
});
// The code-interpreter server (TypeScript, run by envd with the capsule's node in
// code-interpreter-v1 capsules) is a second entry; the zeromq addon it speaks to Jupyter kernels
// with stays external and is copied into node_modules with the prebuilt addons for this
// platform (the capsule runs this host's node binary).
await build({
  entryPoints: [join(root, 'packages/envd/dist/src/code-interpreter/main.js')],
  outfile: join(out, 'code-interpreter/server.cjs'),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minify: true,
  external: ['zeromq'],
  logLevel: 'warning',
});
copyZeromq();
// The TypeScript contexts strip types with sucrase inside the capsule's Node kernel
// (node_kernel.cjs): one self-contained file there, loaded on the first TypeScript cell.
await build({
  entryPoints: [join(root, 'node_modules/sucrase/dist/index.js')],
  outfile: join(out, 'code-interpreter/sucrase.cjs'),
  bundle: true,
  platform: 'node',
  target: 'node18',
  format: 'cjs',
  minify: true,
  logLevel: 'warning',
});
// envd would quietly fall back to child_process without it (e.g. while the addon is being rebuilt).
if (!existsSync(join(out, 'node_modules/@wrenn/native/build/Release/wrenn_native.node'))) {
  throw new Error(
    'packages/native/build/Release/wrenn_native.node is missing: build it with `node packages/native/build.mjs`, then bundle again',
  );
}
await writeCodeCache();

/** zeromq's JS, its addon loader (cmake-ts) and the glibc prebuilds for this architecture. */
function copyZeromq() {
  const dest = join(out, 'node_modules');
  const zmq = join(root, 'node_modules/zeromq');
  const prebuilds = join('build/linux', process.arch, 'node');
  const parts = [
    'package.json',
    'build/manifest.json',
    ...readdirSync(join(zmq, 'lib'))
      .filter((f) => f.endsWith('.js'))
      .map((f) => `lib/${f}`),
    ...readdirSync(join(zmq, prebuilds))
      .filter((d) => d.startsWith('glibc-'))
      .map((d) => join(prebuilds, d)),
  ];
  for (const part of parts) cpSync(join(zmq, part), join(dest, 'zeromq', part), { recursive: true });
  for (const part of ['package.json', 'build/loader.js', 'build/loader.mjs'])
    cpSync(join(root, 'node_modules/cmake-ts', part), join(dest, 'cmake-ts', part));
}

/**
 * The spawn addon is required by package name (resolving the package's "exports" costs ~3 ms at
 * every envd start); in the bundle it sits at a fixed place next to envd.cjs, so require it there.
 */
function addonByPath() {
  const file = join(out, 'envd.cjs');
  const code = readFileSync(file, 'utf8');
  const parts = code.split('"@wrenn/native/addon"');
  if (parts.length < 2) throw new Error('envd.cjs does not require "@wrenn/native/addon": update addonByPath()');
  writeFileSync(file, parts.join('"./node_modules/@wrenn/native/build/Release/wrenn_native.node"'));
}

/** start.cjs with the node modules the bundle requires at load time and the V8 flags to set after them. */
function writeStartFile() {
  const bundle = readFileSync(join(out, 'envd.cjs'), 'utf8');
  const required = [...bundle.matchAll(/require\("([a-z_:/]+)"\)/g)].map((m) => m[1]);
  // node:net loads dns and cluster inside server.listen(): loaded up front they keep node's cache.
  const builtins = [...new Set([...required.filter((name) => isBuiltin(name)), 'node:dns', 'node:cluster'])].sort();
  if (!builtins.includes('node:http')) throw new Error('envd.cjs requires no node:http: the bundle looks wrong');
  const start = readFileSync(join(root, 'packages/envd/bundle/start.cjs'), 'utf8')
    .replace('const BUILTINS = [];', `const BUILTINS = ${JSON.stringify(builtins)};`)
    .replace("const FLAGS = '';", `const FLAGS = ${JSON.stringify(envdV8Flags().join(' '))};`);
  if (!start.includes('const BUILTINS = ["'))
    throw new Error('packages/envd/bundle/start.cjs has no BUILTINS list to fill in');
  writeFileSync(join(out, ENVD_START), start);
}

/** Runs envd once on loopback with the capsule's node flags, warms it up, saves its code cache. */
async function writeCodeCache() {
  const cacheFile = join(out, 'envd.v8cache');
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', LANG: 'C.UTF-8' };
  const child = spawn(
    process.execPath,
    [...ENVD_NODE_FLAGS, join(out, ENVD_START), '--port', '0', '--host', '127.0.0.1'],
    {
      env: { ...env, WRENN_ENVD_WRITE_CODE_CACHE: cacheFile },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  const listening = envdListening(child);
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  try {
    const port = await listening.port;
    await warmUp(`http://127.0.0.1:${port}`);
    const exited = once(child, 'exit');
    child.kill('SIGUSR2');
    const [code] = await exited;
    if (code !== 0 || !existsSync(cacheFile))
      throw new Error(`envd did not write its code cache (exit ${code}):\n${listening.stderr()}`);
    if (/code cache rejected/.test(listening.stderr()))
      throw new Error(`envd rejected a code cache while warming up:\n${listening.stderr()}`);
  } finally {
    clearTimeout(timer);
    if (child.exitCode === null) child.kill('SIGKILL');
  }
  if (statSync(cacheFile).size === 0) throw new Error('envd wrote an empty code cache');
}

/** What a new capsule's first minute looks like: health, /init, commands, stat and list. */
async function warmUp(baseUrl) {
  const { Process } = await import('@wrenn/protocol/gen/envd/process_pb');
  const { Filesystem } = await import('@wrenn/protocol/gen/envd/filesystem_pb');
  const ok = async (path, init) => {
    const res = await fetch(`${baseUrl}${path}`, init);
    await res.arrayBuffer();
    if (!res.ok) throw new Error(`envd answered ${res.status} to ${path} while warming up`);
  };
  await ok('/health');
  await ok('/init', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  await ok('/envs');
  for (const useBinaryFormat of [true, false]) {
    const transport = createConnectTransport({ baseUrl, httpVersion: '1.1', useBinaryFormat });
    const proc = createClient(Process, transport);
    const fs = createClient(Filesystem, transport);
    for await (const _ of proc.start({ process: { cmd: '/bin/sh', args: ['-c', 'echo warm'] } })) {
      // drain until the end event
    }
    await fs.stat({ path: '/' });
    await fs.listDir({ path: '/', depth: 1 });
  }
}
