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
// (127.88.0.1), Debian's dnsmasq answering *.wrenn.test with it on 127.88.0.53, and vitest in a mount
// namespace whose /etc/resolv.conf names that resolver, with only E2B_DOMAIN, E2B_API_KEY and
// NODE_EXTRA_CA_CERTS set (no E2B_API_URL/E2B_SANDBOX_URL).
//
// Which tests need a server: `--offline` runs the suite with E2B_DOMAIN set to a domain that
// resolves nowhere (no `wrenn up`); tests that pass there do not talk to a server (mocked or pure
// unit tests; the mocked ones build their URLs from E2B_DOMAIN, so they fail in the run against
// Wrenn, whose URLs are set with E2B_API_URL/E2B_SANDBOX_URL, and are left out of its counts). The normal run also does that first pass (unless --no-offline-pass) and reports the
// server tests' counts separately (`server`), which is the figure issue 17 tracks.
// Run as root from the repository root after the build (`npx tsc -b`).
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, fetch } from 'undici';
import { startImageMirror } from './lib/e2b-suite-images.mjs';
import { freePort } from './lib/free-port.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SHARED_IMAGES = process.env.WRENN_TEST_IMAGES ?? '/var/cache/wrenn-test-images';
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

/** `wrenn up` (the CLI) with a fresh data dir, its own address pool and port. */
async function startWrenn(o) {
  if (existsSync('/sys/fs/cgroup/memory/wrenn') || existsSync('/sys/fs/cgroup/wrenn'))
    throw new Error('a Wrenn agent already runs on this machine (cgroup parent "wrenn"): not starting a second');
  const dataDir = mkdtempSync(join(tmpdir(), 'wrenn-e2b-suite-'));
  // A new user's first `base` capsule builds the template (minutes on 2 cores); reuse the
  // machine's test template cache unless asked not to.
  if (!o.freshTemplates) {
    for (const t of ['minimal', 'base']) {
      const from = join(SHARED_IMAGES, t);
      if (existsSync(join(from, 'manifest.json'))) {
        mkdirSync(join(dataDir, 'images'), { recursive: true });
        const cp = spawnSync('cp', ['-a', '--reflink=auto', from, join(dataDir, 'images', t)], { stdio: 'inherit' });
        if (cp.status !== 0) throw new Error(`could not copy the ${t} template from ${SHARED_IMAGES}`);
      }
    }
  }
  const apiKey = `wrn_${randomBytes(16).toString('hex')}`;
  const listen = o.domainMode ? `${DOMAIN_MODE.address}:443` : `127.0.0.1:${await freePort()}`;
  const up = spawn(process.execPath, [join(root, 'packages/cli/bin/wrenn.js'), 'up'], {
    env: {
      ...process.env,
      WRENN_DIR: dataDir,
      WRENN_LISTEN: listen,
      WRENN_API_KEY: apiKey,
      // Away from the default pool, the smoke script's and the test suites' slots (10.238-255).
      WRENN_NET_POOL: '10.237.0.0/22',
      WRENN_METADATA_PORT: '31267',
      WRENN_LOG_LEVEL: process.env.WRENN_LOG_LEVEL ?? 'warn',
      ...(o.domainMode ? { WRENN_TLS: 'self-signed', WRENN_DOMAIN: DOMAIN_MODE.domain } : {}),
      ...(o.mirror ? { WRENN_REGISTRY_MIRROR: o.mirror } : {}),
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const upLogFile = join(tmpdir(), `wrenn-e2b-suite-up-${process.pid}.log`);
  let upLog = '';
  up.stderr.on('data', (d) => {
    upLog += d;
    writeFileSync(upLogFile, d, { flag: 'a' });
  });
  const started = new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error('wrenn up did not start within 600 s')), 600_000);
    const check = () => {
      if (upLog.includes('Wrenn is running at')) {
        clearTimeout(timer);
        ok();
      }
    };
    up.stderr.on('data', check);
    up.once('exit', (code, signal) => {
      clearTimeout(timer);
      fail(new Error(`wrenn up exited (${code ?? signal}) before it was running:\n${upLog}`));
    });
  });
  try {
    await started;
  } catch (err) {
    // Nothing ran in it yet: stop it (when still starting) and remove the data dir.
    if (up.exitCode === null && up.signalCode === null) {
      up.kill('SIGTERM');
      await once(up, 'exit');
    }
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  const scheme = o.domainMode ? 'https' : 'http';
  log(`wrenn up is running at ${scheme}://${listen} (data ${dataDir}, log ${upLogFile})`);
  // The SDK gets the key's e2b_ form, as a user would: its own key check then passes as it is.
  const { e2bKeyOf } = await import(join(root, 'packages/control-plane/dist/src/index.js'));
  const caFile = o.domainMode ? join(dataDir, 'tls', 'ca.crt') : undefined;
  // Over TLS this script's own calls (the cleanup) trust the deployment's CA.
  const dispatcher = caFile ? new Agent({ connect: { ca: readFileSync(caFile) } }) : undefined;
  return { up, url: `${scheme}://${listen}`, apiKey, e2bKey: e2bKeyOf(apiKey), dataDir, upLogFile, caFile, dispatcher };
}

const DOMAIN_MODE = { domain: 'wrenn.test', address: '127.88.0.1', resolver: '127.88.0.53' };

/** dnsmasq answering *.wrenn.test with the listener's address, and a resolv.conf naming it. */
function startResolver() {
  const dir = mkdtempSync(join(tmpdir(), 'wrenn-e2b-suite-dns-'));
  const resolvConf = join(dir, 'resolv.conf');
  writeFileSync(resolvConf, `nameserver ${DOMAIN_MODE.resolver}\noptions timeout:1 attempts:2\n`);
  const dns = spawn(
    'dnsmasq',
    [
      '--keep-in-foreground',
      '--conf-file=/dev/null',
      '--no-resolv',
      '--no-hosts',
      `--listen-address=${DOMAIN_MODE.resolver}`,
      '--bind-interfaces',
      '--port=53',
      `--address=/${DOMAIN_MODE.domain}/${DOMAIN_MODE.address}`,
      '--pid-file=',
      '--user=nobody',
    ],
    { stdio: 'ignore' },
  );
  return {
    resolvConf,
    stop() {
      dns.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Destroys every capsule left (failed tests leave some), stops `wrenn up`, removes its data dir. */
async function stopWrenn(w) {
  const headers = { 'X-API-Key': w.apiKey };
  try {
    let cursor;
    const ids = [];
    do {
      const q = cursor ? `?cursor=${encodeURIComponent(cursor)}` : '';
      const page = await (await fetch(`${w.url}/v1/capsules${q}`, { headers, dispatcher: w.dispatcher })).json();
      for (const c of page.capsules ?? []) if (c.state !== 'stopped') ids.push(c.id);
      cursor = page.next_cursor;
    } while (cursor);
    for (const id of ids)
      await fetch(`${w.url}/v1/capsules/${id}`, { method: 'DELETE', headers, dispatcher: w.dispatcher }).catch(
        () => {},
      );
    if (ids.length) log(`destroyed ${ids.length} capsules left by the suite`);
  } catch (err) {
    log(`could not list/destroy leftover capsules: ${err}`);
  }
  if (w.up.exitCode === null && w.up.signalCode === null) {
    const exited = once(w.up, 'exit');
    w.up.kill('SIGTERM');
    const timer = setTimeout(() => w.up.kill('SIGKILL'), 60_000);
    await exited;
    clearTimeout(timer);
  }
  rmSync(w.dataDir, { recursive: true, force: true });
  if (existsSync('/sys/fs/cgroup/memory/wrenn')) log('WARNING: wrenn up left its cgroup parent behind');
}

/** Runs vitest with the JSON reporter; returns its report. */
async function runVitest(sdk, config, env, o, resolvConf) {
  const report = join(tmpdir(), `wrenn-e2b-suite-${process.pid}-${Date.now()}.json`);
  const args = [
    join(dirname(sdk), 'node_modules', 'vitest', 'vitest.mjs'),
    'run',
    '--config',
    config,
    `--maxWorkers=${o.maxWorkers}`,
    '--reporter=default',
    '--reporter=json',
    `--outputFile.json=${report}`,
    ...(o.internet ? [] : ['--testNamePattern', `^(?!.*(${PUBLIC_INTERNET_TESTS.map(escapeRegExp).join('|')}))`]),
    ...o.filters,
  ];
  // Domain mode: in a mount namespace of its own whose /etc/resolv.conf names the test resolver.
  const child = resolvConf
    ? spawn(
        'unshare',
        [
          '--mount',
          '--propagation',
          'private',
          'sh',
          '-c',
          'mount --bind "$0" /etc/resolv.conf && exec "$@"',
          resolvConf,
          process.execPath,
          ...args,
        ],
        { cwd: sdk, env, stdio: ['ignore', 'inherit', 'inherit'] },
      )
    : spawn(process.execPath, args, { cwd: sdk, env, stdio: ['ignore', 'inherit', 'inherit'] });
  await once(child, 'exit');
  if (!existsSync(report)) throw new Error('vitest wrote no report');
  const json = JSON.parse(readFileSync(report, 'utf8'));
  rmSync(report, { force: true });
  return json;
}

/** One row per test: file (relative), name, status (passed|failed|skipped), first failure line. */
function testsOf(report, sdk) {
  return report.testResults.flatMap((f) => {
    const file = relative(sdk, f.name);
    if (f.assertionResults.length === 0 && f.status === 'failed')
      return [{ file, name: '(file failed to load)', status: 'failed', message: (f.message ?? '').split('\n')[0] }];
    return f.assertionResults.map((t) => ({
      file,
      name: t.fullName,
      status: t.status === 'passed' ? 'passed' : t.status === 'failed' ? 'failed' : 'skipped',
      message: t.status === 'failed' ? (t.failureMessages?.[0] ?? '').split('\n')[0].slice(0, 300) : undefined,
    }));
  });
}

function counts(tests) {
  const c = { total: tests.length, passed: 0, failed: 0, skipped: 0 };
  for (const t of tests) c[t.status]++;
  return c;
}

function byFile(tests) {
  const files = {};
  for (const t of tests) {
    files[t.file] ??= { passed: 0, failed: 0, skipped: 0 };
    files[t.file][t.status]++;
  }
  return files;
}

const keyOf = (t) => `${t.file}\u0000${t.name}`;

async function main() {
  const o = parseArgs(process.argv.slice(2));
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
      const tests = testsOf(await runVitest(sdk, config, env, o), sdk);
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
      const w = await startWrenn(o).catch(async (err) => {
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
        const tests = testsOf(await runVitest(sdk, config, env, o, dns?.resolvConf), sdk);
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
        await stopWrenn(w);
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
