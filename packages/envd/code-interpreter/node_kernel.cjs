// The JavaScript context of the code-interpreter server: one long-lived Node process per context.
// Cells arrive as JSON lines on stdin; each runs in this process's global scope (so variables,
// functions and imports stay), with top-level await and ESM `import` statements (turned into
// dynamic imports resolved from the context's working directory). After a cell, a marker line
// with its outcome (the last expression's value or the error) goes to stdout and stderr.
// A TypeScript context is the same process with its cells' types stripped first by sucrase
// (bundled beside this file as sucrase.cjs, loaded on the first TypeScript cell).

const vm = require('node:vm');
const util = require('node:util');
const readline = require('node:readline');
const { createRequire } = require('node:module');
const { pathToFileURL } = require('node:url');

const END = '\x1e__wrenn_cell_end__';
const fromCwd = () => createRequire(`${process.cwd()}/`);
globalThis.require = (id) => fromCwd()(id);
globalThis.__wrennImport = (spec) => {
  let target = spec;
  try {
    const resolved = fromCwd().resolve(spec);
    if (resolved.startsWith('/')) target = pathToFileURL(resolved).href;
  } catch {}
  return import(target);
};

// `import x from 'm'`, `import {a, b as c} from 'm'`, `import * as ns from 'm'`, `import 'm'`
function rewriteImports(code) {
  return code.replace(/^\s*import\s+(?:(.+?)\s+from\s+)?(['"][^'"]+['"])\s*;?\s*$/gm, (_m, what, spec) => {
    const load = `(await __wrennImport(${spec}))`;
    if (!what) return `${load};`;
    const parts = [];
    const ns = /^\*\s+as\s+([\w$]+)$/.exec(what.trim());
    if (ns) return `globalThis.${ns[1]} = ${load};`;
    const m = /^([\w$]+)?\s*,?\s*(\{[^}]*\})?$/.exec(what.trim());
    if (!m) return _m;
    parts.push(`const __m = ${load};`);
    if (m[1]) parts.push(`globalThis.${m[1]} = __m.default ?? __m;`);
    if (m[2]) {
      for (const item of m[2]
        .slice(1, -1)
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)) {
        const [name, alias] = item.split(/\s+as\s+/);
        parts.push(`globalThis.${(alias ?? name).trim()} = __m.${name.trim()};`);
      }
    }
    return `{ ${parts.join(' ')} }`;
  });
}

// Top-level declarations of an async-wrapped cell become globals so later cells see them.
function hoistDeclarations(code) {
  return code
    .replace(/^(?:const|let|var)\s+([\w$]+)\s*=/gm, 'globalThis.$1 =')
    .replace(/^(async\s+)?function\s+([\w$]+)\s*\(/gm, 'globalThis.$2 = $1function $2(');
}

function asyncCell(code) {
  const body = hoistDeclarations(rewriteImports(code)).replace(/\s+$/, '');
  const lines = body.split('\n');
  const last = lines.pop() ?? '';
  const expr = last.replace(/;\s*$/, '');
  const withReturn = `(async () => {\n${lines.join('\n')}\nreturn (${expr});\n})()`;
  try {
    new vm.Script(withReturn);
    return withReturn;
  } catch {
    return `(async () => {\n${body}\n})()`;
  }
}

let sucrase;
function stripTypes(code) {
  sucrase ??= require('./sucrase.cjs');
  // Imports are kept even when this cell does not use them: a later cell may.
  return sucrase.transform(code, { transforms: ['typescript'], keepUnusedImports: true, disableESTransforms: true })
    .code;
}

async function run(code) {
  const needsAsync = /\bawait\b/.test(code) || /^\s*import\s/m.test(code);
  const source = needsAsync ? asyncCell(code) : code;
  const value = vm.runInThisContext(source, { filename: 'cell.js' });
  return needsAsync ? await value : value;
}

const flush = (stream) => new Promise((resolve) => stream.write('', resolve));

// One cell at a time, in arrival order.
let queue = Promise.resolve();
readline
  .createInterface({ input: process.stdin })
  .on('line', (line) => {
    queue = queue.then(() => runLine(line));
  })
  // stdin ends when the server that started us is gone: so are we, even if a cell left timers.
  .on('close', () => process.exit(0));

async function runLine(line) {
  let cell;
  try {
    cell = JSON.parse(line);
  } catch {
    return;
  }
  const outcome = {};
  try {
    const source = String(cell.code ?? '');
    const value = await run(cell.typescript ? stripTypes(source) : source);
    if (value !== undefined && !cell.silent) outcome.result = { 'text/plain': util.inspect(value) };
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    outcome.error = { name: e.name, value: e.message, traceback: e.stack ?? String(e) };
  }
  await flush(process.stdout);
  await flush(process.stderr);
  process.stdout.write(`${END}${JSON.stringify(outcome)}\n`);
  process.stderr.write(`${END}\n`);
}
process.on('unhandledRejection', (err) => process.stderr.write(`Unhandled rejection: ${util.inspect(err)}\n`));
