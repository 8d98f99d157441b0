#!/usr/bin/env node
// Runs E2B's own JS SDK test suite (the vitest `unit` project of e2b-dev/E2B packages/js-sdk) against
// this repository's `wrenn up`, the way a new user would point the SDK at it, and prints the counts
// as JSON. Nothing of E2B's code is kept here: give it a checkout (or `git archive` of
// packages/js-sdk) and it installs the SDK's own dependencies and vitest beside it, writes a vitest
// config for the unit project, starts `wrenn up` with a fresh data dir, runs the suite, then
// destroys every capsule, stops `wrenn up` and removes the data dir.
//
//   node scripts/e2b-suite.mjs <E2B checkout | its packages/js-sdk> [--max-workers 2]
//        [--filter <path substring>]... [--offline] [--out result.json] [--fresh-templates]
//        [--offline-cache file.json]  (keeps the offline pass's passing tests; reused when it exists)
//        [--domain-mode]  (E2B_DOMAIN alone, as a user deploying on a domain: below)
//        [--template]  (runs the SDK's template tests, tests/template, instead of the unit project)
//        [--internet]  (also runs the tests that dial public addresses from inside a sandbox; left
//                       out by default so that a run sends traffic only to this machine)
//
// --domain-mode: `wrenn up --tls self-signed --domain wrenn.test` on 443 of its own loopback address
// (127.89.0.1), Debian's dnsmasq answering *.wrenn.test with it on 127.89.0.53, and vitest in a mount
// namespace whose /etc/resolv.conf names that resolver, with only E2B_DOMAIN, E2B_API_KEY and
// NODE_EXTRA_CA_CERTS set (no E2B_API_URL/E2B_SANDBOX_URL).
//
// Which tests need a server: `--offline` runs the suite with E2B_DOMAIN set to a domain that
// resolves nowhere (no `wrenn up`); tests that pass there do not talk to a server (mocked or pure
// unit tests; the mocked ones build their URLs from E2B_DOMAIN, so they fail in the run against
// Wrenn, whose URLs are set with E2B_API_URL/E2B_SANDBOX_URL, and are left out of its counts). The normal run also does that first pass (unless --no-offline-pass) and reports the
// server tests' counts separately (`server`), which is the figure issue 17 tracks.
// Run as root from the repository root after the build (`npx tsc -b`).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startImageMirror } from './lib/e2b-suite-images.mjs';
import {
  DOMAIN_MODE,
  holdSuiteLock,
  SHARED_IMAGES,
  startResolver,
  startWrenn,
  stopWrenn,
} from './lib/suite-wrenn-up.mjs';
import { byFile, counts, runVitest, testsOf } from './lib/vitest-report.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// The SDK's dev dependencies the unit project needs (the rest are for browsers, workers, builds).
const DEV_DEPS = ['vitest', 'msw', 'dotenv', 'error-stack-parser-es'];
const UNIT_EXCLUDES = ['tests/runtimes/**', 'tests/template/**', 'tests/connectionConfig.test.ts'];
// Tests whose sandboxes open connections to public addresses and expect answers (1.1.1.1, 8.8.8.8,
// connectivitycheck.gstatic.com). Left out unless --internet: a run keeps to this machine. (The
// "deny all" and "internet access disabled" cases stay: their connections never leave the capsule.)
const PUBLIC_INTERNET_TESTS = [
  'allow only 1.1.1.1',
  'deny specific IP address',
  'allow takes precedence over deny',
  'updateNetwork applies new egress rules',
  'updateNetwork clears existing rules when fields are omitted',
  'internet access enabled',
  'internet access default',
];
const escapeRegExp = (t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
// --template: E2B's template build tests (Template.build against the server), run on their own.
const TEMPLATE_INCLUDE = ['tests/template/**/*.test.ts'];

function parseArgs(argv) {
  const o = {
    filters: [],
    maxWorkers: 2,
    offline: false,
    offlinePass: true,
    out: undefined,
    freshTemplates: false,
    template: false,
    internet: false,
  };
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--filter') o.filters.push(value());
    else if (a === '--max-workers') o.maxWorkers = Number(value());
    else if (a === '--out') o.out = resolve(value());
    else if (a === '--offline') o.offline = true;
    else if (a === '--offline-cache') o.offlineCache = resolve(value());
    else if (a === '--no-offline-pass') o.offlinePass = false;
    else if (a === '--fresh-templates') o.freshTemplates = true;
    else if (a === '--domain-mode') o.domainMode = true;
    else if (a === '--template') o.template = true;
    else if (a === '--internet') o.internet = true;
    else if (a.startsWith('-')) throw new Error(`unknown option ${a}`);
    else rest.push(a);
  }
  if (rest.length !== 1) throw new Error('give the path of an E2B checkout (or of its packages/js-sdk)');
  if (!Number.isInteger(o.maxWorkers) || o.maxWorkers < 1) throw new Error('--max-workers must be a whole number ≥ 1');
  return { ...o, checkout: resolve(rest[0]) };
}

/** The js-sdk directory: the checkout itself or its packages/js-sdk. */
function sdkDir(checkout) {
  for (const d of [join(checkout, 'packages', 'js-sdk'), checkout]) {
    if (existsSync(join(d, 'tests', 'setup.ts')) && existsSync(join(d, 'package.json'))) return d;
  }
  throw new Error(`${checkout} has neither packages/js-sdk/tests/setup.ts nor tests/setup.ts`);
}

/**
 * Installs the SDK's runtime dependencies and the few dev dependencies the unit project uses, at
 * the versions its package.json asks for, into the directory above it (node resolves them from
 * there), so its own package.json (whose dev dependencies include browsers and workers) is not used.
 */
function installDeps(sdk) {
  const pkg = JSON.parse(readFileSync(join(sdk, 'package.json'), 'utf8'));
  const depsDir = dirname(sdk);
  const wanted = { ...pkg.dependencies, ...pkg.optionalDependencies };
  for (const d of DEV_DEPS) if (pkg.devDependencies?.[d]) wanted[d] = pkg.devDependencies[d];
  const stamp = join(depsDir, 'node_modules', '.wrenn-e2b-suite.json');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === JSON.stringify(wanted)) return;
  if (!existsSync(join(depsDir, 'package.json')))
    writeFileSync(join(depsDir, 'package.json'), '{ "name": "e2b-suite-deps", "private": true }\n');
  // An alias range ("npm:undici@8") installs under the alias name as written.
  const specs = Object.entries(wanted).map(([name, range]) => `${name}@${range}`);
  log(`installing ${specs.length} packages into ${depsDir}/node_modules`);
  const r = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', ...specs], {
    cwd: depsDir,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (r.status !== 0) throw new Error('npm install failed');
  writeFileSync(stamp, JSON.stringify(wanted));
}

/** Our vitest config for the unit project (the same selection and settings as E2B's `unit`). */
function writeConfig(sdk, o) {
  const file = join(sdk, 'vitest.wrenn-suite.config.mjs');
  const setup = existsSync(join(sdk, 'tests', 'globalFetchFallback.setup.ts'))
    ? ['tests/globalFetchFallback.setup.ts']
    : [];
  writeFileSync(
    file,
    `import { defineConfig } from 'vitest/config';
export default defineConfig({
  test: {
    include: ${JSON.stringify(o.template ? TEMPLATE_INCLUDE : ['tests/**/*.test.ts'])},
    exclude: ${JSON.stringify(o.template ? [] : UNIT_EXCLUDES)},
    isolate: true,
    globals: false,
    testTimeout: ${o.template ? 300000 : 30000},
    environment: 'node',
    setupFiles: ${JSON.stringify(setup)},
    deps: { interopDefault: true },
    env: { ...process.env },
  },
});
`,
  );
  return file;
}

const log = (s) => process.stderr.write(`[e2b-suite] ${s}\n`);

/** What runVitest needs for this suite: the SDK's vitest, our config, the public-address filter. */
function vitestRun(sdk, config, env, o) {
  return {
    cwd: sdk,
    vitest: join(dirname(sdk), 'node_modules', 'vitest', 'vitest.mjs'),
    config,
    env,
    maxWorkers: o.maxWorkers,
    args: [
      ...(o.internet ? [] : ['--testNamePattern', `^(?!.*(${PUBLIC_INTERNET_TESTS.map(escapeRegExp).join('|')}))`]),
      ...o.filters,
    ],
  };
}

const keyOf = (t) => `${t.file}\u0000${t.name}`;

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (!o.offline && !holdSuiteLock(log)) return;
  const sdk = sdkDir(o.checkout);
  installDeps(sdk);
  const config = writeConfig(sdk, o);
  const base = { ...process.env };
  for (const k of Object.keys(base)) if (k.startsWith('E2B_')) delete base[k];
  const result = { sdk: JSON.parse(readFileSync(join(sdk, 'package.json'), 'utf8')).version };
  try {
    let offlinePassed;
    if (!o.offline && o.offlineCache && existsSync(o.offlineCache)) {
      offlinePassed = new Set(JSON.parse(readFileSync(o.offlineCache, 'utf8')));
      log(`offline pass taken from ${o.offlineCache}`);
    } else if (o.offline || o.offlinePass) {
      // A domain that resolves nowhere (the suite's mocked tests build their URLs from it):
      // whatever passes here needs no server.
      const env = { ...base, E2B_API_KEY: `e2b_${'0'.repeat(40)}`, E2B_DOMAIN: 'wrenn-offline.invalid' };
      log('offline pass (no server)');
      const tests = testsOf(await runVitest(vitestRun(sdk, config, env, o)), sdk);
      offlinePassed = new Set(tests.filter((t) => t.status === 'passed').map(keyOf));
      if (o.offlineCache && o.filters.length === 0) writeFileSync(o.offlineCache, JSON.stringify([...offlinePassed]));
      result.offline = counts(tests);
      if (o.offline) result.offlineByFile = byFile(tests);
    }
    // The template tests pull Docker Hub images: a loopback registry mirror serves stand-ins.
    let mirror;
    if (!o.offline && o.template) {
      const testing = await import(join(root, 'packages/host-agent/dist/src/testing/oci.js'));
      mirror = await startImageMirror(testing, SHARED_IMAGES, log);
      o.mirror = mirror.mirror;
    }
    if (!o.offline) {
      const dns = o.domainMode ? startResolver() : undefined;
      const w = await startWrenn(o, log).catch(async (err) => {
        await mirror?.stop();
        throw err;
      });
      try {
        const env = o.domainMode
          ? { ...base, E2B_API_KEY: w.e2bKey, E2B_DOMAIN: DOMAIN_MODE.domain, NODE_EXTRA_CA_CERTS: w.caFile }
          : {
              ...base,
              E2B_API_KEY: w.e2bKey,
              E2B_API_URL: w.url,
              E2B_SANDBOX_URL: w.url,
              E2B_VOLUME_API_URL: w.url,
              E2B_DOMAIN: 'localhost',
            };
        result.mode = o.domainMode ? `E2B_DOMAIN=${DOMAIN_MODE.domain} over TLS` : 'E2B_API_URL + E2B_SANDBOX_URL';
        const t0 = Date.now();
        const tests = testsOf(await runVitest({ ...vitestRun(sdk, config, env, o), resolvConf: dns?.resolvConf }), sdk);
        result.seconds = Math.round((Date.now() - t0) / 1000);
        result.all = counts(tests);
        if (offlinePassed) {
          const server = tests.filter((t) => !offlinePassed.has(keyOf(t)));
          result.server = counts(server);
          result.serverByFile = byFile(server);
        } else result.byFile = byFile(tests);
        result.failures = tests
          .filter((t) => t.status === 'failed')
          .map((t) => ({ file: t.file, name: t.name, message: t.message }));
      } finally {
        await stopWrenn(w, log);
        dns?.stop();
        await mirror?.stop();
      }
    }
  } finally {
    rmSync(config, { force: true });
  }
  const text = `${JSON.stringify(result, null, 2)}\n`;
  if (o.out) writeFileSync(o.out, text);
  process.stdout.write(text);
}

main().catch((err) => {
  console.error(`[e2b-suite] ${err instanceof Error ? err.message : err}`);
  process.exit(1);
});
