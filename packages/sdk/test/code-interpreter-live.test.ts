// Capsule.runCode and the code-context methods of @wrenn/sdk against a live `wrenn up` with the
// built-in `code-interpreter-v1` template (from the shared template cache; built there on first
// use): state across calls, streamed callbacks (proved without timing: the cell waits for a file
// the test writes when the first line arrives), errors with traceback, a chart as PNG plus chart
// data, contexts, the cwd option, per-call env vars, a timeout, a private capsule (its traffic
// token sent; strangers refused), and the typed errors of a killed capsule and of a capsule
// without a code interpreter. Network slot 6 (the SDK's).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Live, startLive } from '@wrenn/control-plane/testing';
import {
  Capsule,
  CapsuleGoneError,
  CodeInterpreter,
  ConflictError,
  type ExecutionError,
  type ExecutionResult,
  InvalidArgumentError,
  NotFoundError,
  type OutputMessage,
  PermissionDeniedError,
  TimeoutError,
} from '../src/index.js';

const plain = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');

describe('@wrenn/sdk runCode against wrenn up', { timeout: 900_000 }, () => {
  let live: Live;
  let opts: { apiKey: string; baseUrl: string };
  let cap: Capsule;

  before(async () => {
    live = await startLive(6, 'sdk-ci');
    opts = { apiKey: live.apiKey, baseUrl: live.url };
    // The first create builds the template if the shared cache lacks it (apt, minutes).
    cap = await Capsule.create({ ...opts, template: 'code-interpreter-v1', timeoutSec: 900 });
  });
  after(async () => {
    await cap?.destroy().catch(() => undefined);
    await live?.close();
  });

  it('keeps python state between calls and counts executions', async () => {
    assert.equal((await cap.runCode('1+1')).text, '2');
    await cap.runCode('x = 21');
    const r = await cap.runCode('x * 2');
    assert.equal(r.text, '42');
    assert.equal(r.error, undefined);
    assert.ok((r.executionCount ?? 0) >= 3, `execution count ${r.executionCount}`);
  });

  it('streams stdout and stderr to the callbacks while the cell runs', async () => {
    const out: OutputMessage[] = [];
    const err: OutputMessage[] = [];
    let wrote: Promise<unknown> | undefined;
    const r = await cap.runCode(
      [
        'import os, sys, time',
        'print("ready", flush=True)',
        'print("to stderr", file=sys.stderr, flush=True)',
        // Only a streamed "ready" lets the test write this file: a buffered reply would never come.
        'while not os.path.exists("/tmp/go"): time.sleep(0.05)',
        'print("done")',
      ].join('\n'),
      {
        timeoutMs: 60_000,
        onStdout: (m) => {
          out.push(m);
          if (m.line === 'ready\n') wrote = cap.files.write('/tmp/go', 'go');
        },
        onStderr: (m) => {
          err.push(m);
        },
      },
    );
    await wrote;
    assert.deepEqual(
      out.map((m) => m.line),
      ['ready\n', 'done\n'],
    );
    assert.deepEqual(
      err.map((m) => [m.line, m.error]),
      [['to stderr\n', true]],
    );
    assert.deepEqual(r.logs, { stdout: ['ready\n', 'done\n'], stderr: ['to stderr\n'] });
    // Each line carries the kernel's time for it (ms since the epoch), in order.
    const [ready, done] = out.map((m) => m.timestamp);
    assert.ok(ready! > Date.parse('2020-01-01') && ready! <= done!, `timestamps ${ready} ${done}`);
  });

  it('returns an exception with its traceback and calls onError', async () => {
    const seen: ExecutionError[] = [];
    const r = await cap.runCode('def f():\n    return 1 / 0\nf()', { onError: (e) => seen.push(e) });
    assert.ok(r.error);
    assert.equal(r.error.name, 'ZeroDivisionError');
    assert.equal(r.error.value, 'division by zero');
    assert.match(plain(r.error.traceback), /----> 3 f\(\)/);
    assert.deepEqual(seen, [r.error]);
    // The kernel carries on.
    assert.equal((await cap.runCode('x')).text, '21');
  });

  it('returns a matplotlib chart as png and chart data, through onResult', async () => {
    const seen: ExecutionResult[] = [];
    const r = await cap.runCode(
      [
        'import matplotlib.pyplot as plt',
        "plt.plot([1, 2, 3], [2, 4, 8], label='growth')",
        "plt.title('Growth')",
        "plt.xlabel('day')",
        "plt.ylabel('size')",
        'plt.show()',
      ].join('\n'),
      { onResult: (x) => seen.push(x) },
    );
    assert.equal(r.error, undefined, r.error?.traceback);
    const chart = r.results.find((x) => x.png);
    assert.ok(chart, `results: ${JSON.stringify(r.results.map((x) => Object.keys(x)))}`);
    assert.equal(chart.isMainResult, false);
    assert.ok(
      Buffer.from(chart.png ?? '', 'base64')
        .subarray(0, 8)
        .equals(Buffer.from('\x89PNG\r\n\x1a\n', 'latin1')),
    );
    assert.equal(chart.chart?.type, 'line');
    assert.equal(chart.chart?.title, 'Growth');
    assert.equal(chart.chart?.x_label, 'day');
    assert.ok(Array.isArray(chart.chart?.elements) && chart.chart.elements.length === 1);
    assert.deepEqual(seen, r.results);
  });

  it('returns html and data for a DataFrame', async () => {
    const r = await cap.runCode('import pandas as pd\npd.DataFrame({"a": [1, 2]})');
    const [res] = r.results;
    assert.ok(res?.isMainResult);
    assert.match(res.html ?? '', /<table/);
    assert.deepEqual(res.data, { a: [1, 2] });
  });

  it('applies env vars to one call only', async () => {
    const r = await cap.runCode('import os\nos.environ.get("ONLY_NOW", "unset")', { envs: { ONLY_NOW: 'yes' } });
    assert.equal(r.text, 'yes');
    assert.equal((await cap.runCode('os.environ.get("ONLY_NOW", "unset")')).text, 'unset');
  });

  it('creates, lists, isolates, restarts and removes contexts', async () => {
    const ctx = await cap.createCodeContext({ language: 'python', cwd: '/tmp' });
    assert.equal(ctx.language, 'python');
    assert.equal(ctx.cwd, '/tmp');
    assert.ok((await cap.listCodeContexts()).some((c) => c.id === ctx.id));
    await cap.runCode('secret = "ctx-only"', { context: ctx });
    assert.equal((await cap.runCode('secret')).error?.name, 'NameError');
    assert.equal((await cap.runCode('secret', { context: ctx })).text, 'ctx-only');
    assert.equal((await cap.runCode('import os\nos.getcwd()', { context: ctx.id })).text, '/tmp');
    await cap.restartCodeContext(ctx);
    assert.equal((await cap.runCode('secret', { context: ctx })).error?.name, 'NameError');
    await cap.removeCodeContext(ctx);
    assert.ok(!(await cap.listCodeContexts()).some((c) => c.id === ctx.id));
    await assert.rejects(cap.runCode('1', { context: ctx }), NotFoundError);
    await assert.rejects(cap.restartCodeContext(ctx), NotFoundError);
  });

  it('runs in a context of its own for the cwd option and for other languages', async () => {
    const a = await cap.runCode('import os\nkept = 5\nos.getcwd()', { cwd: '/var' });
    assert.equal(a.text, '/var');
    assert.equal((await cap.runCode('kept', { cwd: '/var' })).text, '5');
    assert.equal((await cap.runCode('kept')).error?.name, 'NameError');
    await cap.runCode('const base = 40', { language: 'js' });
    assert.equal((await cap.runCode('base + 2', { language: 'javascript' })).text, '42');
    const sh = await cap.runCode('echo "$((6 * 7))"', { language: 'bash' });
    assert.deepEqual(sh.logs.stdout, ['42\n']);
  });

  it('refuses bad input with InvalidArgumentError', async () => {
    await assert.rejects(cap.runCode('1', { language: 'r' }), (e: unknown) => {
      assert.ok(e instanceof InvalidArgumentError, String(e));
      assert.match(e.message, /not available/);
      return true;
    });
    await assert.rejects(cap.runCode('1', { context: 'x', language: 'python' }), InvalidArgumentError);
    await assert.rejects(cap.runCode('1', { envs: { 'A=B': 'x' } }), InvalidArgumentError);
    await assert.rejects(cap.createCodeContext({ cwd: 'relative' }), InvalidArgumentError);
  });

  it('interrupts a cell that outlives timeoutMs with a TimeoutError; the kernel keeps its state', async () => {
    await cap.runCode('survivor = "yes"');
    await assert.rejects(cap.runCode('import time\ntime.sleep(120)', { timeoutMs: 1500 }), TimeoutError);
    // The server interrupted the sleeping cell when the client left, so this one runs.
    const next = await cap.runCode('survivor', { timeoutMs: 60_000 });
    assert.equal(next.text, 'yes', JSON.stringify(next));
  });

  it('says when a capsule has no code interpreter', async () => {
    const plainCap = await Capsule.create({ ...opts, template: 'minimal', timeoutSec: 120 });
    try {
      assert.equal(await plainCap.codeInterpreter.isAvailable(), false);
      await assert.rejects(plainCap.runCode('1'), (e: unknown) => {
        assert.ok(e instanceof ConflictError, String(e));
        assert.equal(e.code, 'no_code_interpreter');
        return true;
      });
    } finally {
      await plainCap.destroy();
    }
    assert.equal(await cap.codeInterpreter.isAvailable(), true);
  });

  it('reaches a private capsule (allowPublicTraffic false) with its traffic token; others are refused', async () => {
    const priv = await Capsule.create({
      ...opts,
      template: 'code-interpreter-v1',
      timeoutSec: 120,
      network: { allowPublicTraffic: false },
    });
    try {
      assert.ok(priv.info.trafficAccessToken, 'a private capsule comes with a traffic access token');
      assert.equal((await priv.runCode('6 * 7')).text, '42');
      // Without the token (or with another), the proxy refuses: a typed PermissionDeniedError.
      for (const trafficAccessToken of [undefined, 'not-the-token']) {
        const stranger = new CodeInterpreter({
          url: priv.getUrl(49999),
          capsuleId: priv.capsuleId,
          accessToken: priv.info.envdAccessToken,
          ...(trafficAccessToken ? { trafficAccessToken } : {}),
        });
        await assert.rejects(stranger.runCode('1'), PermissionDeniedError);
      }
    } finally {
      await priv.destroy();
    }
  });

  it('fails with CapsuleGoneError once the capsule was killed', async () => {
    const doomed = await Capsule.create({ ...opts, template: 'code-interpreter-v1', timeoutSec: 120 });
    assert.equal((await doomed.runCode('1+1')).text, '2');
    await doomed.kill();
    await assert.rejects(doomed.runCode('1+1', { timeoutMs: 10_000 }), CapsuleGoneError);
    await assert.rejects(doomed.listCodeContexts(), CapsuleGoneError);
    // The neighbour is untouched.
    assert.equal((await cap.runCode('x')).text, '21');
  });
});
