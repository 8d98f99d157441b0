// Running one of E2B's vitest suites and reading its JSON report: one row per test and counts per
// file (shared by scripts/e2b-suite.mjs and scripts/e2b-code-interpreter-suite.mjs).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

/** Runs vitest (a path to its vitest.mjs) with the JSON reporter; returns its report. In domain mode (resolvConf) in a mount namespace. */
export async function runVitest({ cwd, vitest, config, env, maxWorkers, args: extra = [], resolvConf }) {
  const report = join(tmpdir(), `wrenn-e2b-suite-${process.pid}-${Date.now()}.json`);
  const args = [
    vitest,
    'run',
    '--config',
    config,
    `--maxWorkers=${maxWorkers}`,
    '--reporter=default',
    '--reporter=json',
    `--outputFile.json=${report}`,
    ...extra,
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
        { cwd, env, stdio: ['ignore', 'inherit', 'inherit'] },
      )
    : spawn(process.execPath, args, { cwd, env, stdio: ['ignore', 'inherit', 'inherit'] });
  await once(child, 'exit');
  if (!existsSync(report)) throw new Error('vitest wrote no report');
  const json = JSON.parse(readFileSync(report, 'utf8'));
  rmSync(report, { force: true });
  return json;
}

/** One row per test: file (relative), name, status (passed|failed|skipped), first failure line. */
export function testsOf(report, sdk) {
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

export function counts(tests) {
  const c = { total: tests.length, passed: 0, failed: 0, skipped: 0 };
  for (const t of tests) c[t.status]++;
  return c;
}

export function byFile(tests) {
  const files = {};
  for (const t of tests) {
    files[t.file] ??= { passed: 0, failed: 0, skipped: 0 };
    files[t.file][t.status]++;
  }
  return files;
}
