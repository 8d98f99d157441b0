// The official e2b SDK (unchanged) against our envd: sandbox.commands and sandbox.pty.
// In debug mode (E2B_DEBUG=true) the SDK talks to envd at localhost:49983 directly, with no API.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CommandExitError, InvalidArgumentError, Sandbox, TimeoutError } from 'e2b';
import { startTestEnvd, type TestEnvd } from './helpers.js';

const ENVD_PORT = 49983;
const text = (bytes: Uint8Array) => Buffer.from(bytes).toString();

/** The SDK's port is fixed; another suite may hold it for a while, so wait for it. */
async function startOnSdkPort(etcDir: string): Promise<TestEnvd> {
  const until = Date.now() + 120_000;
  for (;;) {
    try {
      return await startTestEnvd({ port: ENVD_PORT, portForwarding: false, etcDir });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || Date.now() > until) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

async function eventually(check: () => boolean | Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) assert.fail(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('e2b SDK: commands and pty against envd', () => {
  let envd: TestEnvd;
  let sbx: Sandbox;
  const savedDebug = process.env.E2B_DEBUG;

  // The SDK runs every command as `bash -l`: give root a clean home so the host's own login
  // profile (slow, with lock files) stays out of the suite.
  let etc = '';
  let home = '';

  before(async () => {
    etc = mkdtempSync(join(tmpdir(), 'wrenn-sdk-etc-'));
    home = mkdtempSync(join(tmpdir(), 'wrenn-sdk-home-'));
    writeFileSync(
      join(etc, 'passwd'),
      `root:x:0:0:root:${home}:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n`,
    );
    writeFileSync(join(etc, 'group'), 'root:x:0:\nnogroup:x:65534:\n');
    process.env.E2B_DEBUG = 'true';
    envd = await startOnSdkPort(etc);
    sbx = await Sandbox.create();
  });
  after(async () => {
    const left = sbx ? await sbx.commands.list().catch(() => []) : [];
    for (const p of left) await sbx.commands.kill(p.pid).catch(() => false);
    await envd?.close();
    rmSync(etc, { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
    if (savedDebug === undefined) delete process.env.E2B_DEBUG;
    else process.env.E2B_DEBUG = savedDebug;
    assert.deepEqual(
      left.map((p) => p.pid),
      [],
      'a test left processes running',
    );
  });

  test('run: stdout, stderr, exit code; CommandExitError on failure', async () => {
    const ok = await sbx.commands.run('echo hi; echo oops >&2');
    assert.equal(ok.exitCode, 0);
    assert.equal(ok.stdout, 'hi\n');
    assert.equal(ok.stderr, 'oops\n');
    assert.equal(ok.error, undefined);

    await assert.rejects(sbx.commands.run('echo partial; exit 3'), (err: unknown) => {
      assert.ok(err instanceof CommandExitError, String(err));
      assert.equal(err.exitCode, 3);
      assert.equal(err.stdout, 'partial\n');
      assert.equal(err.error, 'exit status 3');
      return true;
    });
  });

  test('run: streaming callbacks, envs, cwd, user', async () => {
    const seen: string[] = [];
    await sbx.commands.run('echo one; echo two >&2', {
      onStdout: (d) => void seen.push(`out:${d}`),
      onStderr: (d) => void seen.push(`err:${d}`),
    });
    assert.deepEqual(seen.sort(), ['err:two\n', 'out:one\n']);

    assert.equal(
      (await sbx.commands.run('echo "$GREETING"', { envs: { GREETING: 'hello world' } })).stdout,
      'hello world\n',
    );
    assert.equal((await sbx.commands.run('pwd', { cwd: '/tmp' })).stdout, '/tmp\n');
    assert.equal(
      (await sbx.commands.run('pwd; echo $HOME')).stdout,
      `${home}\n${home}\n`,
      'default cwd is the home of the user',
    );
    assert.equal((await sbx.commands.run('id -u', { user: 'root' })).stdout, '0\n');
    assert.equal((await sbx.commands.run('id -un', { user: 'nobody' })).stdout, 'nobody\n');

    await assert.rejects(sbx.commands.run('pwd', { cwd: '/no/such/dir' }), (err: unknown) => {
      assert.ok(err instanceof InvalidArgumentError, String(err));
      assert.match((err as Error).message, /\/no\/such\/dir/);
      return true;
    });
  });

  test('background: list, connect from a second handle, disconnect, kill', async () => {
    const handle = await sbx.commands.run('echo started; sleep 300', { background: true });
    assert.ok(handle.pid > 0);
    await eventually(() => handle.stdout.includes('started'), 'first output');

    const listed = (await sbx.commands.list()).find((p) => p.pid === handle.pid);
    assert.ok(listed);
    assert.equal(listed.cmd, '/bin/bash');
    assert.deepEqual(listed.args, ['-l', '-c', 'echo started; sleep 300']);

    const attached = await sbx.commands.connect(handle.pid);
    assert.equal(attached.pid, handle.pid);
    await handle.disconnect();
    assert.ok(
      (await sbx.commands.list()).some((p) => p.pid === handle.pid),
      'disconnecting does not stop the command',
    );

    assert.equal(await sbx.commands.kill(handle.pid), true);
    await assert.rejects(attached.wait(), (err: unknown) => {
      assert.ok(err instanceof CommandExitError, String(err));
      assert.equal(err.exitCode, -1);
      assert.equal(err.error, 'signal: killed');
      return true;
    });
    assert.equal(await sbx.commands.kill(handle.pid), false, 'killing a finished command reports false');
    assert.equal(
      (await sbx.commands.list()).find((p) => p.pid === handle.pid),
      undefined,
    );
  });

  test('stdin: sendStdin and closeStdin', async () => {
    const cat = await sbx.commands.run('cat', { background: true, stdin: true });
    await sbx.commands.sendStdin(cat.pid, 'hello ');
    await cat.sendStdin(new TextEncoder().encode('stdin\n'));
    await eventually(() => cat.stdout === 'hello stdin\n', 'echoed stdin');
    await sbx.commands.closeStdin(cat.pid);
    const result = await cat.wait();
    assert.equal(result.exitCode, 0);
    assert.equal(result.stdout, 'hello stdin\n');
  });

  test('a command timeout kills the command and surfaces as TimeoutError', async () => {
    await assert.rejects(sbx.commands.run('sleep 300', { timeoutMs: 600 }), (err: unknown) => {
      assert.ok(err instanceof TimeoutError, String(err));
      return true;
    });
    await eventually(async () => (await sbx.commands.list()).length === 0, 'the timed-out command to be gone');
  });

  test('pty: create with size, input, resize, kill', async () => {
    let output = '';
    const term = await sbx.pty.create({ cols: 80, rows: 24, onData: (d) => void (output += text(d)) });
    const send = (s: string) => sbx.pty.sendInput(term.pid, new TextEncoder().encode(s));
    await send('stty size\n');
    await eventually(() => output.includes('24 80'), 'stty size 24 80');
    await send('echo pty$((6*7))\n');
    await eventually(() => output.includes('pty42'), 'echoed command output');
    await sbx.pty.resize(term.pid, { cols: 132, rows: 50 });
    await send('stty size\n');
    await eventually(() => output.includes('50 132'), 'stty size after resize');

    assert.equal(await sbx.pty.kill(term.pid), true);
    await assert.rejects(term.wait(), (err: unknown) => err instanceof CommandExitError && err.exitCode === -1);
  });

  test('pty: exiting the shell ends the handle cleanly', async () => {
    let output = '';
    const term = await sbx.pty.create({ cols: 100, rows: 30, onData: (d) => void (output += text(d)) });
    // Type only once the shell shows its prompt: a shell that sets up its line editor after the
    // input arrived may flush that typeahead, as on any terminal.
    for (let i = 0; i < 200 && output.length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    await new Promise((r) => setTimeout(r, 100));
    await sbx.pty.sendInput(term.pid, new TextEncoder().encode('echo "lang=$LANG"; exit\n'));
    const result = await term.wait();
    assert.equal(result.exitCode, 0);
    assert.match(output, /lang=C\.UTF-8/);
  });
});
