#!/usr/bin/env node
// One-step set-up used by `npm start` and `npm test` on a fresh Debian machine (as root):
// installs the Debian packages Wrenn needs, the npm packages, and builds the TypeScript.
// Each step is skipped when already done, so repeated runs cost well under a second.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const forTests = process.argv.includes('--test');

// What the runtime needs on the host, and what the test suite needs on top.
const runtimePackages = [
  'iproute2',
  'iptables',
  'ipset',
  'busybox-static',
  'util-linux',
  'procps',
  'debootstrap',
  'e2fsprogs',
  'kmod',
  'gcc',
  'libc6-dev',
  'xz-utils',
  'g++',
  'make',
  'python3',
  'mount',
  'dmsetup',
  'libseccomp-dev',
  'zstd',
];
const testPackages = [
  'postgresql',
  'tmux',
  'chromium',
  'qemu-system-x86',
  'qemu-utils',
  'attr',
  'xfsprogs',
  'wrk',
  'docker-registry',
  // The E2B_DOMAIN tests' resolver for their own test domain.
  'dnsmasq-base',
  'musl-tools', // a program linked against musl for the musl image test (image-template)
  'nghttp2-client', // h2load: bench/proxy-tls's HTTP/2 load generator
  'libnghttp2-dev', // nghttp2's headers for the TLS front's HTTP/2 (the library itself is Node's own copy)
  'haproxy', // the TCP load balancer in front of the cluster test's control-plane replicas
];

function step(msg) {
  process.stderr.write(`[setup] ${msg}\n`);
}

function missingDebianPackages(names) {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Package} ${db:Status-Status}\n', ...names], { encoding: 'utf8' });
  const installed = new Set(
    (r.stdout || '')
      .split('\n')
      .filter((l) => l.endsWith(' installed'))
      .map((l) => l.split(' ')[0]),
  );
  return names.filter((n) => !installed.has(n));
}

function installDebian(names) {
  const missing = missingDebianPackages(names);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    step(`missing Debian packages: ${missing.join(' ')}; run as root or install them with apt-get`);
    return;
  }
  step(`installing Debian packages: ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-q'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], { stdio: 'inherit', env });
  if (missing.includes('docker-registry')) {
    // The tests start their own registry on loopback; the package's service would listen on :5000
    // of every interface.
    step('stopping and disabling the docker-registry service the package enabled (tests run their own)');
    spawnSync('systemctl', ['disable', '--now', 'docker-registry'], { stdio: 'ignore' });
  }
}

function newer(a, b) {
  return existsSync(a) && (!existsSync(b) || statSync(a).mtimeMs > statSync(b).mtimeMs);
}

installDebian(forTests ? [...runtimePackages, ...testPackages] : runtimePackages);

const marker = join(root, 'node_modules', '.package-lock.json');
if (
  !existsSync(marker) ||
  newer(join(root, 'package-lock.json'), marker) ||
  newer(join(root, 'package.json'), marker)
) {
  step('installing npm packages');
  execFileSync('npm', ['install', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
}

// better-sqlite3 is the one addon built against one node ABI (the others use N-API): after a switch
// to another node line it no longer loads, so rebuild it then (once per ABI; the marker says which).
const abiMarker = join(root, 'node_modules', '.wrenn-node-abi');
if (!existsSync(abiMarker) || readFileSync(abiMarker, 'utf8').trim() !== process.versions.modules) {
  const load = "new (require('better-sqlite3'))(':memory:').close()";
  if (spawnSync(process.execPath, ['-e', load], { cwd: root, stdio: 'ignore' }).status !== 0) {
    step(`rebuilding better-sqlite3 for node ${process.version}`);
    // From source against this node's own headers when it has them (no header or prebuilt download).
    const prefix = dirname(dirname(process.execPath));
    const env = { ...process.env, npm_config_build_from_source: 'true' };
    if (existsSync(join(prefix, 'include/node/node.h'))) env.npm_config_nodedir = prefix;
    execFileSync('npm', ['rebuild', 'better-sqlite3'], { cwd: root, stdio: 'inherit', env });
  }
  writeFileSync(abiMarker, process.versions.modules);
}

// The native addon (UFFD, namespaces): npm install builds it; rebuilt here when its C++ changed since.
const nativeDir = join(root, 'packages', 'native');
const nativeBuilt = join(nativeDir, 'build', 'Release', 'wrenn_native.node');
if (
  existsSync(nativeBuilt) &&
  Math.max(...['cpp', 'binding.gyp'].map((n) => newestMtime(join(nativeDir, n)))) > statSync(nativeBuilt).mtimeMs
) {
  step('rebuilding the native addon (its C++ sources changed)');
  execFileSync(process.execPath, [join(nativeDir, 'build.mjs')], { cwd: nativeDir, stdio: 'inherit' });
}

step('building TypeScript');
execFileSync(join(root, 'node_modules', '.bin', 'tsc'), ['-b'], { cwd: root, stdio: 'inherit' });
// envd as one file: what capsules run (see scripts/bundle-envd.mjs).
execFileSync(process.execPath, [join(root, 'scripts', 'bundle-envd.mjs')], { cwd: root, stdio: 'inherit' });

// The dashboard's static files (Vite), rebuilt only when a source is newer than the last build.
function newestMtime(path) {
  const s = statSync(path);
  if (!s.isDirectory()) return s.mtimeMs;
  return Math.max(s.mtimeMs, ...readdirSync(path).map((n) => newestMtime(join(path, n))));
}
const dashboard = join(root, 'packages', 'dashboard');
const dashboardBuilt = join(dashboard, 'dist', 'index.html');
// It bundles @wrenn/sdk (the notebook's CodeInterpreter): the SDK's sources count too.
const dashboardSources = ['src', 'index.html', 'vite.config.ts', 'package.json']
  .map((n) => join(dashboard, n))
  .concat(join(root, 'packages', 'sdk', 'src'))
  .filter((p) => existsSync(p));
if (!existsSync(dashboardBuilt) || Math.max(...dashboardSources.map(newestMtime)) > statSync(dashboardBuilt).mtimeMs) {
  step('building the dashboard');
  execFileSync('npm', ['run', 'build', '-w', 'packages/dashboard'], { cwd: root, stdio: 'inherit' });
}
