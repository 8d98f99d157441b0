// The published @e2b/code-interpreter package, unchanged, against `wrenn up` with the built-in
// `code-interpreter-v1` template (built on first use into the shared template cache, then reused):
// Python state, streaming callbacks, errors with tracebacks, DataFrames, matplotlib charts as PNG
// plus chart data, env vars per call and per sandbox, cwd, contexts, JavaScript, TypeScript and bash, an
// interrupt by timeout, reconnecting, and a killed sandbox. Network slot 9 (shared with the e2b
// base suite; test files run one at a time).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Sandbox } from '@e2b/code-interpreter';
import { type LiveSystem, SHARED_IMAGES, startLive } from './e2b-live.js';

describe('@e2b/code-interpreter against wrenn up', () => {
  let sys: LiveSystem;
  let sbx: Sandbox;
  const opts = () => ({ ...sys.sdk(), timeoutMs: 600_000 });
  before(async () => {
    sys = await startLive({ db: 'sqlite', slot: 9, imagesDir: SHARED_IMAGES });
    // The first create builds the template when the cache lacks it (apt, a few minutes).
    sbx = await Sandbox.create({ ...opts(), envs: { SANDBOX_WIDE: 'from-create' } });
  });
  after(async () => {
    await sbx?.kill().catch(() => undefined);
    await sys?.close();
  });

  it('runs python and keeps its state between calls', async () => {
    const two = await sbx.runCode('1+1');
    assert.equal(two.text, '2');
    assert.equal(two.error, undefined);
    await sbx.runCode('x = 21');
    const r = await sbx.runCode('x * 2');
    assert.equal(r.text, '42');
    assert.ok((r.executionCount ?? 0) >= 3, `execution count ${r.executionCount}`);
  });

  it('streams stdout and stderr to the callbacks', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const r = await sbx.runCode('import sys\nprint("hello out")\nprint("hello err", file=sys.stderr)', {
      onStdout: (m) => {
        out.push(m.line);
      },
      onStderr: (m) => {
        err.push(m.line);
      },
    });
    assert.deepEqual(out, ['hello out\n']);
    assert.deepEqual(err, ['hello err\n']);
    assert.deepEqual(r.logs.stdout, ['hello out\n']);
    assert.deepEqual(r.logs.stderr, ['hello err\n']);
  });

  it('returns errors with name, value and traceback', async () => {
    const r = await sbx.runCode('def f():\n    return 1 / 0\nf()');
    assert.ok(r.error);
    assert.equal(r.error.name, 'ZeroDivisionError');
    assert.equal(r.error.value, 'division by zero');
    // Jupyter's traceback, with its colours (as E2B returns it).
    const plain = r.error.traceback.replace(/\x1b\[[0-9;]*m/g, '');
    assert.match(plain, /----> 3 f\(\)/);
    assert.match(plain, /ZeroDivisionError: division by zero/);
  });

  it('returns a pandas DataFrame as html, text and data', async () => {
    const r = await sbx.runCode('import pandas as pd\npd.DataFrame({"a": [1, 2], "b": ["x", "y"]})');
    const [res] = r.results;
    assert.ok(res?.isMainResult);
    assert.match(res.html ?? '', /<table/);
    assert.match(res.text ?? '', /a\s+b/);
    assert.deepEqual(res.data, { a: [1, 2], b: ['x', 'y'] });
  });

  it('returns a matplotlib bar chart as png and chart data', async () => {
    const r = await sbx.runCode(
      [
        'import matplotlib.pyplot as plt',
        'plt.figure(figsize=(6, 4))',
        "plt.bar(['A', 'B', 'C'], [10, 20, 30], label='Sales')",
        "plt.xlabel('Authors')",
        "plt.ylabel('Books (count)')",
        "plt.title('Book sales')",
        'plt.show()',
      ].join('\n'),
    );
    assert.equal(r.error, undefined, r.error?.traceback);
    const chart = r.results.find((x) => x.png);
    assert.ok(chart, `results: ${JSON.stringify(r.results.map((x) => x.formats()))}`);
    assert.ok(
      Buffer.from(chart.png ?? '', 'base64')
        .subarray(0, 8)
        .equals(Buffer.from('\x89PNG\r\n\x1a\n', 'latin1')),
    );
    const c = chart.chart as unknown as Record<string, unknown>;
    assert.equal(c.type, 'bar');
    assert.equal(c.title, 'Book sales');
    assert.equal(c.x_label, 'Authors');
    assert.equal(c.y_label, 'Books (count)');
    assert.equal(c.y_unit, 'count');
    const els = c.elements as { label: string; group: string; value: number }[];
    assert.deepEqual(
      els.map((e) => [e.label, e.group, e.value]),
      [
        ['A', 'Sales', 10],
        ['B', 'Sales', 20],
        ['C', 'Sales', 30],
      ],
    );
  });

  it('applies env vars per call and per sandbox', async () => {
    const per = await sbx.runCode('import os\nos.environ.get("PER_CALL", "unset")', { envs: { PER_CALL: 'yes' } });
    assert.equal(per.text, 'yes');
    const later = await sbx.runCode('os.environ.get("PER_CALL", "unset")');
    assert.equal(later.text, 'unset');
    const wide = await sbx.runCode('os.environ.get("SANDBOX_WIDE", "unset")');
    assert.equal(wide.text, 'from-create');
  });

  it('runs in /home/user by default and in a context cwd of its own', async () => {
    const cwd = await sbx.runCode('import os\nos.getcwd()');
    assert.equal(cwd.text, '/home/user');
    const ctx = await sbx.createCodeContext({ cwd: '/tmp' });
    assert.equal(ctx.cwd, '/tmp');
    const inCtx = await sbx.runCode('import os\nos.getcwd()', { context: ctx });
    assert.equal(inCtx.text, '/tmp');
    await sbx.removeCodeContext(ctx);
  });

  it('creates, lists, isolates, restarts and removes contexts', async () => {
    const ctx = await sbx.createCodeContext({ language: 'python' });
    assert.equal(ctx.language, 'python');
    assert.ok((await sbx.listCodeContexts()).some((c) => c.id === ctx.id));
    await sbx.runCode('secret = "ctx-only"', { context: ctx });
    const other = await sbx.runCode('secret');
    assert.equal(other.error?.name, 'NameError'); // the default context does not see it
    const same = await sbx.runCode('secret', { context: ctx });
    assert.equal(same.text, 'ctx-only');
    await sbx.restartCodeContext(ctx);
    const gone = await sbx.runCode('secret', { context: ctx });
    assert.equal(gone.error?.name, 'NameError');
    await sbx.removeCodeContext(ctx);
    assert.ok(!(await sbx.listCodeContexts()).some((c) => c.id === ctx.id));
    await assert.rejects(sbx.runCode('1', { context: ctx }), /not found/i);
  });

  it('runs javascript with state, top-level await and import', async () => {
    await sbx.runCode('const base = 40', { language: 'js' });
    const r = await sbx.runCode('base + 2', { language: 'javascript' });
    assert.equal(r.text, '42');
    const awaited = await sbx.runCode('const v = await Promise.resolve(7)\nv * 6', { language: 'js' });
    assert.equal(awaited.text, '42');
    const imported = await sbx.runCode("import { join } from 'node:path'\njoin('a', 'b')", { language: 'js' });
    assert.equal(imported.text, 'a/b');
    const out = await sbx.runCode('console.log("from node")', { language: 'js' });
    assert.deepEqual(out.logs.stdout, ['from node\n']);
    const bad = await sbx.runCode('null.x', { language: 'js' });
    assert.equal(bad.error?.name, 'TypeError');
  });

  it('runs typescript with its types stripped, state, top-level await and import', async () => {
    const out = await sbx.runCode('const message: string = "Hello TS"; console.log(message)', { language: 'ts' });
    assert.deepEqual(out.logs.stdout, ['Hello TS\n']);
    const typed = await sbx.runCode(
      "import { basename } from 'node:path'\ninterface Box { n: number }\nconst box: Box = { n: await Promise.resolve(41) }\nbasename('/x/' + (box.n + 1))",
      { language: 'typescript' },
    );
    assert.equal(typed.error, undefined);
    assert.equal(typed.text, '42');
    const kept = await sbx.runCode('message.length as number', { language: 'ts' });
    assert.equal(kept.text, '8');
    const cwd = await sbx.runCode('process.cwd()', { language: 'ts' });
    assert.equal(cwd.text, '/home/user');
    const bad = await sbx.runCode('const broken: = 1', { language: 'ts' });
    assert.equal(bad.error?.name, 'SyntaxError');
  });

  it('runs bash with state', async () => {
    await sbx.runCode('GREETING=hi; cd /tmp', { language: 'bash' });
    const r = await sbx.runCode('echo "$GREETING from $(pwd)"', { language: 'bash' });
    assert.deepEqual(r.logs.stdout, ['hi from /tmp\n']);
    const failed = await sbx.runCode('false', { language: 'bash' });
    assert.ok(failed.error);
  });

  it('refuses languages the template has no kernel for', async () => {
    await assert.rejects(sbx.runCode('1', { language: 'r' }), /400/);
  });

  it('interrupts a cell when the call times out, and the context keeps working', async () => {
    await sbx.runCode('kept = "still here"');
    const started = Date.now();
    await assert.rejects(sbx.runCode('import time\ntime.sleep(60)', { timeoutMs: 2000 }), /timed out/i);
    assert.ok(Date.now() - started < 20_000);
    const next = await sbx.runCode('kept');
    assert.equal(next.text, 'still here');
    // Not the 60 s of the cell: the server interrupted it when the client left.
    const tookMs = Date.now() - started;
    assert.ok(tookMs < 30_000, `the sleeping cell was not interrupted (${tookMs} ms)`);
    console.log(`interrupt by timeout: the next cell answered ${tookMs} ms after the timed-out one started`);
  });

  it('reconnects with Sandbox.connect and keeps the kernel state', async () => {
    await sbx.runCode('marker = 123');
    const again = await Sandbox.connect(sbx.sandboxId, opts());
    const r = await again.runCode('marker');
    assert.equal(r.text, '123');
  });

  it('runs kernels as root (as E2B does), without envd secrets in their environment', async () => {
    const r = await sbx.runCode(
      'import os, getpass\n[getpass.getuser(), sorted(k for k in os.environ if "TOKEN" in k or k.startswith("WRENN_ENVD"))]',
    );
    assert.equal(r.text, "['root', []]");
    const ctx = await sbx.createCodeContext({ cwd: '/root' });
    assert.equal((await sbx.runCode('import os\nos.getcwd()', { context: ctx })).text, '/root');
    await sbx.removeCodeContext(ctx);
  });

  it('starts with a python and a javascript context', async () => {
    const langs = (await sbx.listCodeContexts()).map((c) => c.language);
    assert.ok(langs.includes('python') && langs.includes('javascript'), langs.join(','));
  });

  it('starts the server again after it is killed, without leaving its kernels behind', async () => {
    const count = "echo $(pgrep -fc 'kernel_launcher[.]py') $(pgrep -fc 'node_kernel[.]cjs')";
    const killed = await sbx.commands.run(
      [
        "kill -9 $(pgrep -f 'code-interpreter/server[.]cjs')",
        // envd starts it again (0.5 s later); it opens 49999 once its kernels answer.
        'for i in $(seq 150); do',
        '  python3 -c "import urllib.request as u; u.urlopen(\'http://127.0.0.1:49999/health\', timeout=1)" 2>/dev/null && break',
        '  sleep 0.2',
        'done',
        count,
      ].join('\n'),
      { user: 'root', timeoutMs: 60_000 },
    );
    // One python and one javascript kernel: the new server's; the old server's died with it.
    assert.equal(killed.stdout.trim(), '1 1', killed.stdout + killed.stderr);
    assert.equal((await sbx.runCode('6 * 7')).text, '42');
  });

  it('fails cleanly when the sandbox was killed', async () => {
    const doomed = await Sandbox.create(opts());
    assert.equal((await doomed.runCode('1+1')).text, '2');
    await doomed.kill();
    await assert.rejects(doomed.runCode('1+1', { requestTimeoutMs: 10_000 }));
  });
});
