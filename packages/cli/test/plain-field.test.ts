// A plain field of the capsule contract (`name`, protocol contract/plain-fields.ts) end to end
// against a live `wrenn up` (namespace runtime, network slot 7, the CLI's; test files run one at a
// time): given by the CLI (`--field name=...`) and by @wrenn/sdk (plainFields), stored, returned by
// the native API, `capsule info` and Capsule.get, copied to forks, absent when not given; a value
// or a name outside the contract is refused before any capsule exists, with a message naming it.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Live, startLive } from '@wrenn/control-plane/testing';
import { Capsule, InvalidArgumentError } from '@wrenn/sdk';
import { cliEnv, runCli, STACK_LINE } from './run-cli.js';

describe('a plain capsule field (name) through the CLI, the SDK and the native API', () => {
  let live: Live;
  let home: string;
  let opts: { apiKey: string; baseUrl: string };
  const made: string[] = [];

  const wrenn = (args: string[]) => runCli(args, cliEnv(live, home));
  const nativeGet = async (id: string) => {
    const r = await fetch(`${live.url}/v1/capsules/${id}`, { headers: { 'x-api-key': live.apiKey } });
    const text = await r.text();
    assert.equal(r.status, 200, text);
    return JSON.parse(text) as Record<string, unknown>;
  };
  const count = async () => (await Capsule.list(opts)).length;

  before(async () => {
    live = await startLive(7, 'plain-field');
    home = mkdtempSync(join(tmpdir(), 'wrenn-plain-field-home-'));
    opts = { apiKey: live.apiKey, baseUrl: live.url };
  });
  after(async () => {
    for (const id of made) await Capsule.destroy(id, opts).catch(() => undefined);
    rmSync(home, { recursive: true, force: true });
    await live?.close();
  });

  it('CLI --field name=... is stored and shown by the CLI, the SDK and the native API', async () => {
    const r = await wrenn(['capsule', 'create', '--template', 'minimal', '--field', 'name=web frontend 1', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const created = JSON.parse(r.stdout) as { id: string; name?: string };
    made.push(created.id);
    assert.equal(created.name, 'web frontend 1', r.stdout);
    assert.equal((await nativeGet(created.id)).name, 'web frontend 1');
    const info = await wrenn(['capsule', 'info', created.id]);
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stdout, /^name:\s+web frontend 1$/m, info.stdout);
    const got = await Capsule.get(created.id, opts);
    assert.deepEqual(got.plainFields, { name: 'web frontend 1' });
    const listed = (await Capsule.list(opts)).find((c) => c.capsuleId === created.id);
    assert.deepEqual(listed?.plainFields, { name: 'web frontend 1' }, 'the list carries it too');
  });

  it('@wrenn/sdk plainFields: stored, copied to a fork; absent when not given', async () => {
    const src = await Capsule.create({ ...opts, template: 'minimal', timeoutSec: 600, plainFields: { name: 'src' } });
    made.push(src.capsuleId);
    assert.deepEqual(src.info.plainFields, { name: 'src' });
    const fork = await src.fork({ count: 1, timeoutSec: 120 });
    const f = fork.forks[0];
    assert.ok(f instanceof Capsule, `the fork did not start: ${String(f)}`);
    made.push(f.capsuleId);
    assert.deepEqual(f.info.plainFields, { name: 'src' }, 'a fork keeps the name');
    const plain = await Capsule.create({ ...opts, template: 'minimal', timeoutSec: 600 });
    made.push(plain.capsuleId);
    assert.deepEqual(plain.info.plainFields, {});
    assert.equal('name' in (await nativeGet(plain.capsuleId)), false, 'no name key when none was given');
  });

  it('values and names outside the contract are refused before any capsule exists', async () => {
    const before = await count();
    for (const name of ['', 'two\nlines', 'x'.repeat(101)]) {
      await assert.rejects(
        Capsule.create({ ...opts, template: 'minimal', plainFields: { name } }),
        (err: unknown) => err instanceof InvalidArgumentError && /name/.test(err.message),
        JSON.stringify(name),
      );
    }
    const unknown = await wrenn(['capsule', 'create', '--template', 'minimal', '--field', 'nickname=x']);
    assert.equal(unknown.code, 1, unknown.stdout);
    assert.match(unknown.stderr, /nickname/, unknown.stderr);
    assert.doesNotMatch(unknown.stderr, STACK_LINE, 'no stack trace');
    assert.equal(await count(), before, 'no capsule was made');
  });
});
