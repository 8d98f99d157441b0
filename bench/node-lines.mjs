#!/usr/bin/env node
// The README's Node-lines figures, measured one way (prints JSON): benches run on the machine's node
// in this tree and on each line of .ci/node-lines (or the versions given) in a scratch copy of the
// tree built by that node (scripts/lib/node-line-tree.mjs: tsc output, envd's bundle and code cache
// of its own; the capsules' envd then runs on that node too). Lines take turns within each round and
// the order rotates from round to round, so the drift of a shared machine falls on all of them alike;
// every bench run records the 1-minute load average before it. The summary is the median of the
// rounds' p50s per line and its ratio to the machine's line.
// Usage (root, after `npm run build`):
//   node bench/node-lines.mjs [--rounds 4] [--n 10] [--lock /tmp/wrenn-tests.lock] [--trees DIR]
//        [--benches agent-capsules,e2b-create] [22.23.5 24.22.3 ...]
// --lock takes that flock for each round (one round = every bench on every line), not for the
// whole run, so other work sharing the lock gets its turn between rounds. The scratch trees are
// removed at the end, unless --trees names a dir to keep them in (DIR/<version>, built when absent,
// reused as they are otherwise: remove them after changing the code). A line's tree takes minutes
// to build (a full tsc -b). Takes many minutes in all: `npm run bench` skips it.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { lineEnv, lineTree, repoRoot } from '../scripts/lib/node-line-tree.mjs';
import { nodeLine } from '../scripts/node-line.mjs';

/** What each bench's JSON holds that the summary compares: name → path in the JSON. */
const FIGURES = {
  'agent-capsules': { cold_p50_ms: 'create_to_first_exec.p50_ms', cold_min_ms: 'create_to_first_exec.min_ms' },
  'e2b-create': {
    cold_p50_ms: 'cold.p50_ms',
    cold_min_ms: 'cold.min_ms',
    warm_p50_ms: 'warm_pool.p50_ms',
    warm_min_ms: 'warm_pool.min_ms',
  },
  'e2b-create-phases': {
    create_p50_ms: 'p50.create_ms',
    agent_create_p50_ms: 'p50.agent_create_ms',
    init_to_ready_p50_ms: 'p50.ns_init_to_ready_ms',
    first_run_p50_ms: 'p50.first_run_ms',
    cpu_p50_ms: 'p50.cpu_ms',
  },
  'envd-startup': { ready_p50_ms: 'ready_p50_ms', first_exec_p50_ms: 'first_exec_p50_ms' },
  'envd-early-ready-e2b': {
    early_first_run_p50_ms: 'early.create_to_first_run_ms.p50_ms',
    after_load_first_run_p50_ms: 'after_load.create_to_first_run_ms.p50_ms',
  },
  'envd-early-ready': {
    early_first_exec_p50_ms: 'early.create_to_first_exec_ms.p50_ms',
    after_load_first_exec_p50_ms: 'after_load.create_to_first_exec_ms.p50_ms',
    early_create_p50_ms: 'early.create_ms.p50_ms',
    after_load_create_p50_ms: 'after_load.create_ms.p50_ms',
  },
  'envd-idle-memory': { rss_mb: 'rss_mb', anon_mb: 'anon_mb', pss_mb: 'pss_mb' },
};

function args(argv) {
  const o = {
    rounds: 4,
    n: 10,
    lock: null,
    trees: null,
    benches: ['agent-capsules', 'e2b-create'],
    versions: [],
    oneRound: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) usage(`${a} needs a value`);
      return v;
    };
    if (a === '--rounds') o.rounds = Number(value());
    else if (a === '--n') o.n = Number(value());
    else if (a === '--lock') o.lock = value();
    else if (a === '--trees') o.trees = value();
    else if (a === '--benches') o.benches = value().split(',').filter(Boolean);
    else if (a === '--one-round') o.oneRound = JSON.parse(value());
    else if (/^\d+\.\d+\.\d+$/.test(a)) o.versions.push(a);
    else usage(`unknown argument ${a}`);
  }
  if (!Number.isInteger(o.rounds) || o.rounds < 1 || o.rounds > 50) usage('--rounds must be 1..50');
  if (!Number.isInteger(o.n) || o.n < 3 || o.n > 200) usage('--n must be 3..200');
  for (const b of o.benches) if (!FIGURES[b]) usage(`--benches: ${b} is not one of ${Object.keys(FIGURES).join(', ')}`);
  return o;
}
function usage(msg) {
  console.error(`node-lines: ${msg}`);
  console.error('usage: node bench/node-lines.mjs [--rounds N] [--n N] [--lock FILE] [--benches a,b] [versions...]');
  process.exit(2);
}
const progress = (msg) => console.error(`[node-lines ${new Date().toISOString().slice(11, 19)}] ${msg}`);
const at = (obj, path) => path.split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj);
const median = (xs) => {
  const s = xs.filter((x) => typeof x === 'number').sort((a, b) => a - b);
  if (!s.length) return null;
  const m = Math.floor(s.length / 2);
  return Math.round((s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2) * 10) / 10;
};

/** One bench on one line: its JSON (or an error) and the load average before it. */
function runBench(line, bench, n) {
  const load = Math.round(loadavg()[0] * 100) / 100;
  const env = { ...lineEnv(line.node), BENCH_N: String(n) };
  if (bench === 'agent-capsules') env.BENCH_CONCURRENT = '1'; // the cold create is the figure; 50 at once is not
  const extra = bench === 'e2b-create-phases' || bench === 'envd-startup' ? ['--runs', String(n)] : [];
  const r = spawnSync(line.node, [join(line.tree, 'bench', `${bench}.mjs`), ...extra], {
    cwd: line.tree,
    env,
    encoding: 'utf8',
    maxBuffer: 1 << 26,
  });
  const out = { bench, load_before: load };
  if (r.status !== 0)
    return { ...out, error: `exited ${r.status ?? r.signal}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}` };
  let json;
  try {
    json = JSON.parse(r.stdout.slice(r.stdout.indexOf('{')));
  } catch {
    return { ...out, error: `printed no JSON: ${r.stdout.slice(-300)}` };
  }
  for (const [name, path] of Object.entries(FIGURES[bench])) out[name] = at(json, path) ?? null;
  return out;
}

/** One round: every bench on every line, lines in the given order. */
function oneRound({ lines, benches, n }) {
  const results = [];
  for (const line of lines)
    for (const bench of benches) {
      const r = runBench(line, bench, n);
      progress(`${line.version} ${bench}: ${JSON.stringify(r)}`);
      results.push({ version: line.version, ...r });
    }
  return results;
}

const o = args(process.argv.slice(2));
if (o.oneRound) {
  // The child a locked round runs in (see --lock).
  process.stdout.write(`${JSON.stringify(oneRound(o.oneRound))}\n`);
  process.exit(0);
}

const versions = o.versions.length
  ? o.versions
  : readFileSync(join(repoRoot, '.ci/node-lines'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
const lines = [{ version: process.versions.node, node: process.execPath, tree: repoRoot, keep: true }];
try {
  for (const v of versions) {
    const kept = o.trees && join(o.trees, v);
    if (kept && existsSync(join(kept, 'packages/envd/dist/bundle'))) {
      progress(`node ${v}: reusing the tree in ${kept}`);
      lines.push({ version: v, node: nodeLine(v), tree: kept, keep: true });
      continue;
    }
    progress(`building a tree with node ${v}`);
    const line = { version: v, ...lineTree(v, { build: true, say: progress }) };
    if (kept) {
      mkdirSync(o.trees, { recursive: true });
      renameSync(line.tree, kept);
      line.tree = kept;
      line.keep = true;
    }
    lines.push(line);
  }
  const rounds = [];
  for (let r = 0; r < o.rounds; r++) {
    const order = lines.map((_, i) => lines[(i + r) % lines.length]);
    const spec = {
      lines: order.map(({ version, node, tree }) => ({ version, node, tree })),
      benches: o.benches,
      n: o.n,
    };
    progress(`round ${r + 1}/${o.rounds}: ${order.map((l) => l.version).join(', ')}`);
    let results;
    if (o.lock) {
      const child = spawnSync(
        'flock',
        [o.lock, process.execPath, join(repoRoot, 'bench/node-lines.mjs'), '--one-round', JSON.stringify(spec)],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 },
      );
      if (child.status !== 0) throw new Error(`round ${r + 1} exited ${child.status ?? child.signal}`);
      results = JSON.parse(child.stdout);
    } else results = oneRound(spec);
    rounds.push({ round: r + 1, order: spec.lines.map((l) => l.version), results });
  }

  // Per line and figure: the rounds' values, their median and its ratio to the machine's line.
  const summary = {};
  for (const line of lines) {
    const s = {};
    for (const bench of o.benches)
      for (const name of Object.keys(FIGURES[bench])) {
        const values = rounds.map(
          (rd) => rd.results.find((x) => x.version === line.version && x.bench === bench)?.[name] ?? null,
        );
        s[`${bench}.${name}`] = { rounds: values, median: median(values) };
      }
    summary[line.version] = s;
  }
  const base = summary[process.versions.node];
  for (const [version, s] of Object.entries(summary))
    for (const [key, f] of Object.entries(s))
      if (version !== process.versions.node && f.median != null && base[key].median)
        f.vs_machine = Math.round((f.median / base[key].median) * 100) / 100;
  console.log(
    JSON.stringify(
      {
        bench: 'node-lines',
        date: new Date().toISOString(),
        machine_node: process.versions.node,
        n_per_run: o.n,
        rounds: o.rounds,
        summary,
        runs: rounds,
      },
      null,
      2,
    ),
  );
} finally {
  for (const line of lines) if (!line.keep) rmSync(line.tree, { recursive: true, force: true });
}
