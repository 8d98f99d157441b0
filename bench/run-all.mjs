#!/usr/bin/env node
// Runs every bench/*.mjs (except this file and scratch files named tmp-* or _*) one after another, never in parallel (they measure
// time and memory), and prints one JSON object keyed by bench name. A bench that fails or prints
// no JSON is reported as {"error": ...} and makes the exit status non-zero.
// Usage: node bench/run-all.mjs [name-substring ...]
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const self = basename(fileURLToPath(import.meta.url));
// Run by hand (see their headers): side-by-side compares two checkouts and needs arguments;
// density starts up to a thousand capsules and takes many minutes.
const needsArgs = new Set(['side-by-side.mjs', 'density.mjs', 'node-lines.mjs']);
const filters = process.argv.slice(2);
const benches = readdirSync(here)
  .filter((f) => f.endsWith('.mjs') && f !== self && !needsArgs.has(f) && !f.startsWith('tmp-') && !f.startsWith('_'))
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();

function run(file) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(here, file)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    child.once('error', (e) => resolve({ error: e.message }));
    child.once('close', (code, signal) => {
      if (code !== 0)
        return resolve({ error: `exited with ${signal ?? code}`, stderr: err.trim().split('\n').slice(-5).join('\n') });
      resolve(parseJson(out) ?? { error: 'printed no JSON', stdout: out.trim().slice(-500) });
    });
  });
}

/** The whole output as JSON, else the last line that is JSON. */
function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    const lines = text.trim().split('\n').reverse();
    for (const line of lines) {
      try {
        return JSON.parse(line);
      } catch {
        // not this line
      }
    }
    return undefined;
  }
}

const results = {};
let failed = false;
for (const file of benches) {
  const name = file.replace(/\.mjs$/, '');
  process.stderr.write(`bench: ${name} ...\n`);
  const t0 = Date.now();
  results[name] = await run(file);
  if (results[name] && typeof results[name] === 'object' && 'error' in results[name]) failed = true;
  process.stderr.write(`bench: ${name} done in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
}
process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
if (failed) process.exitCode = 1;
