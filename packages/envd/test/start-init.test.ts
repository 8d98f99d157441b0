// WRENN_ENVD_INIT: the host agent hands envd the body of POST /init at start (no /init round trip
// on a new capsule). envd must apply it exactly as /init would, drop it from its environment, and
// refuse to start on a malformed one.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));

function startEnvd(init: string): { child: ChildProcess; port: Promise<number>; stderr: () => string } {
  const child = spawn(process.execPath, [MAIN, '--port', '0', '--host', '127.0.0.1'], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/root', LANG: 'C.UTF-8', WRENN_ENVD_INIT: init },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const port = new Promise<number>((resolve, reject) => {
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /"msg":"envd listening","port":(\d+)/.exec(stderr);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`envd exited with ${code}: ${stderr}`)));
  });
  port.catch(() => undefined);
  return { child, port, stderr: () => stderr };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

test('envd applies WRENN_ENVD_INIT at start: token, env vars, default user and workdir', async (t) => {
  const init = { envVars: { GREETING: 'hello' }, accessToken: 'tok-123', defaultUser: 'root', defaultWorkdir: '/tmp' };
  const s = startEnvd(JSON.stringify(init));
  t.after(() => stop(s.child));
  const base = `http://127.0.0.1:${await s.port}`;
  assert.equal((await fetch(`${base}/envs`)).status, 401, 'the token from WRENN_ENVD_INIT must be required');
  const envs = await fetch(`${base}/envs`, { headers: { 'X-Access-Token': 'tok-123' } });
  assert.equal(envs.status, 200);
  const vars = (await envs.json()) as Record<string, string>;
  assert.equal(vars.GREETING, 'hello');
  assert.equal(vars.WRENN_ENVD_INIT, undefined);
  // A command with no cwd runs in the default workdir and does not see WRENN_ENVD_INIT.
  const body = JSON.stringify({
    process: { cmd: '/bin/sh', args: ['-c', 'pwd; echo "${WRENN_ENVD_INIT:-unset} $GREETING"'] },
  });
  const frame = Buffer.alloc(5 + Buffer.byteLength(body));
  frame.writeUInt32BE(Buffer.byteLength(body), 1);
  frame.write(body, 5);
  const res = await fetch(`${base}/process.Process/Start`, {
    method: 'POST',
    headers: { 'content-type': 'application/connect+json', 'X-Access-Token': 'tok-123' },
    body: frame,
  });
  const raw = Buffer.from(await res.arrayBuffer());
  let out = '';
  for (let off = 0; off + 5 <= raw.length; ) {
    const len = raw.readUInt32BE(off + 1);
    const msg = JSON.parse(raw.subarray(off + 5, off + 5 + len).toString()) as {
      event?: { data?: { stdout?: string } };
    };
    if (msg.event?.data?.stdout) out += Buffer.from(msg.event.data.stdout, 'base64').toString();
    off += 5 + len;
  }
  assert.equal(out, '/tmp\nunset hello\n');
});

test('envd refuses to start on a malformed WRENN_ENVD_INIT and says why', async (t) => {
  for (const [init, why] of [
    ['{not json', /WRENN_ENVD_INIT is not valid JSON/],
    ['{"envVars":{"A":1}}', /WRENN_ENVD_INIT\.envVars\.A must be a string/],
    ['{"accessToken":5}', /WRENN_ENVD_INIT\.accessToken must be a string/],
  ] as const) {
    const s = startEnvd(init);
    t.after(() => stop(s.child));
    await assert.rejects(s.port, why);
  }
});
