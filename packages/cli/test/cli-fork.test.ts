// Fork through @wrenn/sdk (capsule.fork) and the CLI (`wrenn capsule fork`) against a live
// `wrenn up` (namespace runtime, network slot 7, the CLI's): the forks see the source's files,
// their writes stay apart, the source runs on; bad counts are refused before any request with a
// message and exit code 1, an unknown source names itself, never with a stack trace.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Live, startLive } from '@wrenn/control-plane/testing';
import { Capsule, InvalidArgumentError, WrennError } from '@wrenn/sdk';
import { cliEnv, runCli, STACK_LINE as STACK } from './run-cli.js';

describe('fork through @wrenn/sdk and the CLI', () => {
  let live: Live;
  let home: string;
  let opts: { apiKey: string; baseUrl: string };
  const made: string[] = [];

  const wrenn = (args: string[]) => runCli(args, cliEnv(live, home));
  const out = async (c: Capsule, cmd: string) => (await c.commands.run(cmd)).stdout;

  before(async () => {
    live = await startLive(7, 'cli-fork');
    home = mkdtempSync(join(tmpdir(), 'wrenn-cli-fork-home-'));
    opts = { apiKey: live.apiKey, baseUrl: live.url };
  });
  after(async () => {
    for (const id of made) await Capsule.destroy(id, opts).catch(() => undefined);
    rmSync(home, { recursive: true, force: true });
    await live?.close();
  });

  it('@wrenn/sdk: capsule.fork({count, timeoutSec}) gives running capsules with the source files', async () => {
    const src = await Capsule.create({ ...opts, timeoutSec: 600, metadata: { suite: 'sdk-fork' } });
    made.push(src.capsuleId);
    await src.files.write('/home/user/from-src.txt', 'source data\n');
    const r = await src.fork({ count: 2, timeoutSec: 120 });
    assert.equal(r.processesRestarted, true);
    assert.equal(r.forks.length, 2);
    const forks = r.forks.map((f) => {
      if (!(f instanceof Capsule)) throw f;
      made.push(f.capsuleId);
      return f;
    });
    for (const f of forks) {
      assert.equal(f.info.state, 'running');
      assert.equal(f.info.timeoutSec, 120);
      assert.deepEqual(f.info.metadata, { suite: 'sdk-fork' });
      assert.equal(await out(f, 'cat /home/user/from-src.txt'), 'source data\n');
    }
    await (forks[0] as Capsule).files.write('/home/user/fork0.txt', 'x');
    assert.equal(await out(src, 'test -e /home/user/fork0.txt && echo yes || echo no'), 'no\n');
    assert.equal(await out(forks[1] as Capsule, 'test -e /home/user/fork0.txt && echo yes || echo no'), 'no\n');
    assert.equal((await src.getInfo()).state, 'running');
    await assert.rejects(src.fork({ count: 0 }), InvalidArgumentError);
    await src.pause();
    await assert.rejects(src.fork(), (e: unknown) => e instanceof WrennError && e.status === 409);
  });

  it('CLI: wrenn capsule fork prints the fork ids; --json; bad input and unknown ids are plain errors', async () => {
    const src = await Capsule.create({ ...opts, timeoutSec: 600 });
    made.push(src.capsuleId);
    await src.files.write('/home/user/cli.txt', 'cli data\n');

    const plain = await wrenn(['capsule', 'fork', src.capsuleId, '--count', '2', '--timeout', '90']);
    assert.equal(plain.code, 0, plain.stderr);
    const ids = plain.stdout.trim().split('\n');
    made.push(...ids);
    assert.equal(ids.length, 2);
    for (const id of ids) {
      assert.match(id, /^cl-[0-9a-z]+$/);
      const c = await Capsule.connect(id, opts);
      assert.equal(c.info.timeoutSec, 90);
      assert.equal(await out(c, 'cat /home/user/cli.txt'), 'cli data\n');
    }
    assert.match(plain.stderr, /processes started afresh/);

    const json = await wrenn(['capsule', 'fork', src.capsuleId, '--json']);
    assert.equal(json.code, 0, json.stderr);
    const j = JSON.parse(json.stdout) as { processes_restarted: boolean; forks: { id: string; state: string }[] };
    assert.equal(j.processes_restarted, true);
    assert.equal(j.forks.length, 1);
    made.push(...j.forks.map((f) => f.id));
    assert.equal(j.forks[0]?.state, 'running');

    for (const [args, why] of [
      [['--count', '0'], /--count must be a whole number from 1 to 16/],
      [['--count', '17'], /--count must be a whole number from 1 to 16/],
      [['--timeout', '-5'], /--timeout must be a whole number/],
    ] as const) {
      const r = await wrenn(['capsule', 'fork', src.capsuleId, ...args]);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stdout}`);
      assert.match(r.stderr, why);
      assert.doesNotMatch(r.stderr, STACK);
    }
    const unknown = await wrenn(['capsule', 'fork', 'cl-doesnotexist0000']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /cl-doesnotexist0000/);
    assert.doesNotMatch(unknown.stderr, STACK);
  });
});
