// execFileNative / runNative with real programs: output, exit codes, stderr in the error, input on
// stdin, signals, start failures, env and cwd; and the child_process fallback behaving the same.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { type ExecNativeError, execFileNative, runNative } from '../src/index.js';

test('a zero exit resolves with both outputs', async () => {
  const r = await execFileNative('/bin/sh', ['-c', 'echo out; echo err >&2']);
  assert.deepEqual(r, { code: 0, signal: null, stdout: 'out\n', stderr: 'err\n' });
});

test('a non-zero exit rejects with the command, the code and stderr in the message', async () => {
  await assert.rejects(
    execFileNative('/bin/sh', ['-c', 'echo some output; echo it broke >&2; exit 3']),
    (err: ExecNativeError) => {
      assert.equal(err.message, '/bin/sh -c echo some output; echo it broke >&2; exit 3 failed (exit 3): it broke');
      assert.equal(err.code, 3);
      assert.equal(err.stdout, 'some output\n');
      assert.equal(err.stderr, 'it broke\n');
      return true;
    },
  );
  // Without stderr, stdout tells.
  await assert.rejects(
    execFileNative('/bin/sh', ['-c', 'echo only stdout; exit 1']),
    /failed \(exit 1\): only stdout$/,
  );
});

test('a signal that ends it rejects execFileNative, and runNative reports it', async () => {
  await assert.rejects(execFileNative('/bin/sh', ['-c', 'kill -TERM $$']), /failed \(killed by SIGTERM\)/);
  assert.deepEqual(await runNative('/bin/sh', ['-c', 'echo x >&2; exit 4']), {
    code: 4,
    signal: null,
    stdout: '',
    stderr: 'x\n',
  });
});

test('input goes to stdin, which is then closed; without input stdin is /dev/null', async () => {
  assert.equal(
    (await execFileNative('/bin/cat', [], { input: 'line one\nline two\n' })).stdout,
    'line one\nline two\n',
  );
  assert.equal((await execFileNative('/bin/cat', [], { input: Buffer.alloc(1 << 20, 97) })).stdout.length, 1 << 20);
  assert.equal((await execFileNative('/bin/cat', [])).stdout, '');
  // A program that does not read its input still ends normally.
  assert.equal((await runNative('/bin/true', [], { input: 'x'.repeat(1 << 20) })).code, 0);
});

test('a missing program rejects like execFile (ENOENT)', async () => {
  await assert.rejects(
    execFileNative('no-such-tool-wrenn', [], { env: { PATH: '/usr/bin:/bin' } }),
    (err: NodeJS.ErrnoException) => {
      assert.equal(err.code, 'ENOENT');
      assert.match(err.message, /^spawn no-such-tool-wrenn ENOENT/);
      return true;
    },
  );
  await assert.rejects(execFileNative('/bin/true', [], { cwd: '/nonexistent-dir' }), { code: 'ENOENT' });
});

test('env and cwd are the ones given; a bare name is searched in that PATH', async () => {
  const r = await execFileNative('sh', ['-c', 'echo "$A|$PATH"; pwd'], {
    env: { A: 'b c', PATH: '/usr/bin:/bin' },
    cwd: '/tmp',
  });
  assert.equal(r.stdout, 'b c|/usr/bin:/bin\n/tmp\n');
});

test('the child_process fallback (WRENN_NATIVE_SPAWN=0) gives the same results', () => {
  const index = new URL('../src/index.js', import.meta.url).href;
  const code = `
import { execFileNative, nativeSpawnAvailable, runNative } from ${JSON.stringify(index)};
const out = [nativeSpawnAvailable()];
out.push(await execFileNative('/bin/cat', [], { input: 'hi' }));
out.push(await runNative('/bin/sh', ['-c', 'echo e >&2; exit 5']));
out.push(await execFileNative('/bin/sh', ['-c', 'echo bad >&2; exit 2']).catch((e) => e.message));
out.push(await execFileNative('/nonexistent/x', []).catch((e) => e.code));
process.stdout.write(JSON.stringify(out));
`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
    env: { ...process.env, WRENN_NATIVE_SPAWN: '0' },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), [
    false,
    { code: 0, signal: null, stdout: 'hi', stderr: '' },
    { code: 5, signal: null, stdout: '', stderr: 'e\n' },
    '/bin/sh -c echo bad >&2; exit 2 failed (exit 2): bad',
    'ENOENT',
  ]);
});
