#!/usr/bin/env node
// Runs E2B's own code-interpreter JS tests (e2b-dev/code-interpreter `js/tests`, vitest) against
// this repository's `wrenn up`, as a new user would: the published `@e2b/code-interpreter` npm
// package at the version the checkout's js/package.json names, pointed at `wrenn up` with
// E2B_API_URL/E2B_SANDBOX_URL (or, with --domain-mode, E2B_DOMAIN alone over TLS; see
// scripts/e2b-suite.mjs). Nothing of E2B's code is kept here: give it a checkout (or its js/).
// The tests are copied into a work directory beside the installed packages (the checkout's own
// package.json would pull its build tools; their imports of `../src` get the published package), `wrenn up` starts with a fresh data dir (the built-in
// templates copied from the machine's test cache), the suite runs, and the counts are printed as
// JSON; then every capsule is destroyed, `wrenn up` stopped and its data dir removed.
//
//   node scripts/e2b-code-interpreter-suite.mjs <code-interpreter checkout | its js/>
//        [--filter <path substring>]... [--max-workers 2] [--out result.json] [--domain-mode]
//        [--fresh-templates]
//
// Tests for languages Wrenn's code-interpreter-v1 template has no kernel for (R, Java) are run and
// fail with the server's "no kernel" error; they are counted apart (`notInTemplate`).
// Run as root from the repository root after the build (`npx tsc -b`).
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DOMAIN_MODE, holdSuiteLock, startResolver, startWrenn, stopWrenn } from './lib/suite-wrenn-up.mjs';
import { byFile, counts, runVitest, testsOf } from './lib/vitest-report.mjs';

const WORK = process.env.WRENN_E2B_CI_SUITE_DIR ?? '/var/cache/wrenn-e2b-suite-deps/code-interpreter';
// Tests that need a kernel the template does not have: E2B's R and Java env-var files and the R and
// Java cases of cwd.test.ts.
const isNotInTemplate = (t) =>
  /^tests\/env_vars\/(r|java)\.test\.ts$/.test(t.file) ||
  (t.file === 'tests/cwd.test.ts' && /^cwd (r|java)$/.test(t.name));

const log = (s) => process.stderr.write(`[e2b-ci-suite] ${s}\n`);

function optionsOf(argv) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      filter: { type: 'string', multiple: true, default: [] },
      'max-workers': { type: 'string', default: '2' },
      out: { type: 'string' },
      'domain-mode': { type: 'boolean', default: false },
      'fresh-templates': { type: 'boolean', default: false },
    },
  });
  if (positionals.length !== 1)
    throw new Error('give the path of an e2b-dev/code-interpreter checkout (or of its js/)');
  const maxWorkers = Number(values['max-workers']);
  if (!Number.isInteger(maxWorkers) || maxWorkers < 1) throw new Error('--max-workers must be a whole number ≥ 1');
  return {
    checkout: resolve(positionals[0]),
    filters: values.filter,
    maxWorkers,
    out: values.out === undefined ? undefined : resolve(values.out),
    domainMode: values['domain-mode'],
    freshTemplates: values['fresh-templates'],
  };
}

/** The js/ directory of the checkout: it has tests/setup.ts and the package.json of @e2b/code-interpreter. */
function jsDir(checkout) {
  for (const d of [join(checkout, 'js'), checkout]) {
    const pkg = join(d, 'package.json');
    if (existsSync(join(d, 'tests', 'setup.ts')) && existsSync(pkg)) {
      if (JSON.parse(readFileSync(pkg, 'utf8')).name === '@e2b/code-interpreter') return d;
    }
  }
  throw new Error(`${checkout} is not a checkout of e2b-dev/code-interpreter (no js/tests/setup.ts)`);
}

/** The published package at the checkout's version and the checkout's vitest, installed once into WORK. */
function installDeps(js) {
  const pkg = JSON.parse(readFileSync(join(js, 'package.json'), 'utf8'));
  const wanted = { '@e2b/code-interpreter': pkg.version, vitest: pkg.devDependencies?.vitest ?? 'latest' };
  mkdirSync(WORK, { recursive: true });
  const stamp = join(WORK, 'node_modules', '.wrenn-e2b-ci-suite.json');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === JSON.stringify(wanted)) return pkg.version;
  writeFileSync(join(WORK, 'package.json'), '{ "name": "e2b-code-interpreter-suite", "private": true }\n');
  const specs = Object.entries(wanted).map(([name, range]) => `${name}@${range}`);
  log(`installing ${specs.join(' ')} into ${WORK}/node_modules`);
  const r = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', ...specs], {
    cwd: WORK,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (r.status !== 0) throw new Error('npm install failed');
  writeFileSync(stamp, JSON.stringify(wanted));
  return pkg.version;
}

/**
 * The checkout's tests, fresh, in WORK/tests, with their imports of the package's source (`../src`)
 * pointed at the published package; and our vitest config (E2B's selection, a longer timeout).
 */
function prepareTests(js) {
  rmSync(join(WORK, 'tests'), { recursive: true, force: true });
  cpSync(join(js, 'tests'), join(WORK, 'tests'), { recursive: true });
  for (const rel of readdirSync(join(WORK, 'tests'), { recursive: true })) {
    const file = join(WORK, 'tests', rel);
    if (!file.endsWith('.ts')) continue;
    const text = readFileSync(file, 'utf8');
    const fromSource = text.replace(/from '((?:\.\.\/)+)src'/g, (whole, up) =>
      resolve(dirname(join(js, 'tests', rel)), up, 'src') === join(js, 'src') ? "from '@e2b/code-interpreter'" : whole,
    );
    if (fromSource !== text) writeFileSync(file, fromSource);
  }
  const config = join(WORK, 'vitest.wrenn-suite.config.mjs');
  // E2B's own config: tests/**/*.test.ts without tests/runtimes (bun, deno), 30 s per test; here
  // 60 s, as capsule creation is slower on a loaded 2-core machine than on E2B's fleet.
  writeFileSync(
    config,
    `import { defineConfig } from 'vitest/config';
export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    exclude: ['tests/runtimes/**'],
    globals: false,
    testTimeout: 60000,
    environment: 'node',
    deps: { interopDefault: true },
    env: { ...process.env },
  },
});
`,
  );
  return config;
}

async function main() {
  const o = optionsOf(process.argv.slice(2));
  if (!holdSuiteLock(log)) return;
  const js = jsDir(o.checkout);
  const version = installDeps(js);
  const config = prepareTests(js);
  const base = { ...process.env };
  for (const k of Object.keys(base)) if (k.startsWith('E2B_')) delete base[k];
  const result = { codeInterpreter: version };
  const dns = o.domainMode ? startResolver() : undefined;
  const w = await startWrenn({ ...o, templates: ['minimal', 'base', 'code-interpreter-v1'] }, log).catch((err) => {
    dns?.stop();
    throw err;
  });
  try {
    const env = o.domainMode
      ? { ...base, E2B_API_KEY: w.e2bKey, E2B_DOMAIN: DOMAIN_MODE.domain, NODE_EXTRA_CA_CERTS: w.caFile }
      : { ...base, E2B_API_KEY: w.e2bKey, E2B_API_URL: w.url, E2B_SANDBOX_URL: w.url, E2B_DOMAIN: 'localhost' };
    result.mode = o.domainMode ? `E2B_DOMAIN=${DOMAIN_MODE.domain} over TLS` : 'E2B_API_URL + E2B_SANDBOX_URL';
    const t0 = Date.now();
    const run = {
      cwd: WORK,
      vitest: join(WORK, 'node_modules', 'vitest', 'vitest.mjs'),
      config,
      env,
      maxWorkers: o.maxWorkers,
      args: o.filters,
      resolvConf: dns?.resolvConf,
    };
    const tests = testsOf(await runVitest(run), WORK);
    result.seconds = Math.round((Date.now() - t0) / 1000);
    result.all = counts(tests);
    result.notInTemplate = counts(tests.filter(isNotInTemplate));
    result.rest = counts(tests.filter((t) => !isNotInTemplate(t)));
    result.byFile = byFile(tests);
    result.failures = tests
      .filter((t) => t.status === 'failed')
      .map((t) => ({ file: t.file, name: t.name, notInTemplate: isNotInTemplate(t), message: t.message }));
  } finally {
    await stopWrenn(w, log);
    dns?.stop();
  }
  const text = `${JSON.stringify(result, null, 2)}\n`;
  if (o.out) {
    mkdirSync(dirname(o.out), { recursive: true });
    writeFileSync(o.out, text);
  }
  process.stdout.write(text);
}

main().catch((err) => {
  console.error(`[e2b-ci-suite] ${err instanceof Error ? err.message : err}`);
  process.exit(1);
});
