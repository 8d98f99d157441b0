#!/usr/bin/env node
// Compares create latency of this checkout with another one (a built checkout of an earlier
// commit) in one run on the same machine: the two sides' benchmarks alternate, round by round, so
// the machine's drift (this VM's own background work moves single runs by ±10 %) hits both alike.
// Prints JSON: each side's p50 per figure (median over rounds) and new/base ratios.
//
// Usage: node bench/side-by-side.mjs --base <dir> [--rounds 3] [bench ...]
//   <dir>: e.g. `git worktree add /tmp/base <rev> && (cd /tmp/base && npm run setup)`.
//   bench: agent-capsules and/or e2b-create (default both). BENCH_N etc. pass through.
// Not run by `npm run bench` (it needs --base).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  if (i < 0) return dflt;
  const [, v] = args.splice(i, 2);
  return v;
};
const base = opt('--base');
const rounds = Number(opt('--rounds', '3'));
const benches = args.length ? args : ['agent-capsules', 'e2b-create'];
if (!base || !existsSync(join(base, 'bench'))) {
  console.error(
    'usage: node bench/side-by-side.mjs --base <built checkout of the earlier commit> [--rounds N] [bench ...]',
  );
  process.exit(2);
}
if (!Number.isInteger(rounds) || rounds < 1) {
  console.error(`--rounds ${rounds}: want a whole number >= 1`);
  process.exit(2);
}

/** The p50 figures a bench prints, flattened: { "create_to_first_exec.p50_ms": 131.2, ... }. */
function p50s(json, prefix = '', out = {}) {
  for (const [k, v] of Object.entries(json)) {
    if (v && typeof v === 'object') p50s(v, `${prefix}${k}.`, out);
    else if (k === 'p50_ms' && typeof v === 'number') out[prefix.slice(0, -1)] = v;
  }
  return out;
}

function runBench(dir, bench) {
  const r = spawnSync(process.execPath, [join(dir, 'bench', `${bench}.mjs`)], {
    cwd: dir,
    encoding: 'utf8',
    env: process.env,
  });
  if (r.status !== 0)
    throw new Error(
      `${bench} in ${dir} exited with ${r.status}: ${(r.stderr ?? '').trim().split('\n').slice(-5).join('\n')}`,
    );
  const line = r.stdout.slice(r.stdout.indexOf('{'));
  return p50s(JSON.parse(line));
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const round2 = (x) => Math.round(x * 100) / 100;

const result = { bench: 'side-by-side', base: resolve(base), new: here, rounds, figures: {} };
for (const bench of benches) {
  const seen = { base: {}, new: {} };
  for (let i = 0; i < rounds; i++) {
    // Alternate which side goes first, so neither always runs on a warmer machine.
    const order = i % 2 ? ['new', 'base'] : ['base', 'new'];
    for (const side of order) {
      process.stderr.write(`[side-by-side] ${bench} round ${i + 1}/${rounds}: ${side}\n`);
      for (const [k, v] of Object.entries(runBench(side === 'base' ? base : here, bench)))
        (seen[side][k] ??= []).push(v);
    }
  }
  for (const k of Object.keys(seen.new)) {
    if (!seen.base[k]) continue;
    const b = median(seen.base[k]);
    const n = median(seen.new[k]);
    result.figures[`${bench}.${k}`] = {
      base_p50_ms: round2(b),
      new_p50_ms: round2(n),
      ratio: round2(n / b),
      base_runs: seen.base[k],
      new_runs: seen.new[k],
    };
  }
}
console.log(JSON.stringify(result, null, 2));
