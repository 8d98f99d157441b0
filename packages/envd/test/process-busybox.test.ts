// envd in a busybox userland (no bash): the e2b SDK still sends `/bin/bash -l -c <cmd>` and
// `/bin/bash -i -l` for terminals; envd must run them with /bin/sh. The userland is real: envd runs
// in its own mount namespace where /usr/bin (and so /bin) holds only busybox and the node binary.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Client, createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { Process } from '@wrenn/protocol/gen/envd/process_pb';

const serverModule = fileURLToPath(new URL('../src/server.js', import.meta.url));
const isRoot = process.getuid?.() === 0;

// Runs in the new mount namespace: hide /usr/bin behind a tmpfs holding busybox applets and node.
const SETUP = `
set -e
orig="$WRENN_ORIG_BIN"
mount --bind /usr/bin "$orig"
mount -t tmpfs -o size=16m wrenn-busybox /usr/bin
"$orig/cp" "$orig/busybox" /usr/bin/busybox
for a in sh ash echo cat id pwd sleep env ls true printf stty readlink; do "$orig/ln" -s busybox /usr/bin/$a; done
"$orig/touch" /usr/bin/node
"$orig/mount" --bind "$orig/node" /usr/bin/node
"$orig/umount" -l "$orig"
exec /usr/bin/node --input-type=module -e "$ENVD_SCRIPT"
`;

const ENVD_SCRIPT = `
const { startEnvd } = await import(${JSON.stringify(serverModule)});
const s = await startEnvd({ port: 0, host: '127.0.0.1', portForwarding: false });
process.stdout.write('port=' + s.port + '\\n');
process.stdin.on('end', () => s.close().then(() => process.exit(0)));
process.stdin.resume();
`;

async function collectText(
  stream: AsyncIterable<{ event?: { event: { case: string | undefined; value?: unknown } } }>,
) {
  let out = '';
  let exitCode: number | undefined;
  for await (const res of stream) {
    const e = res.event?.event;
    if (e?.case === 'data') out += Buffer.from((e.value as { output: { value: Uint8Array } }).output.value).toString();
    if (e?.case === 'end') exitCode = (e.value as { exitCode: number }).exitCode;
  }
  return { out, exitCode };
}

describe('process.Process in a busybox userland (no /bin/bash)', {
  skip: isRoot ? false : 'needs root to create a mount namespace',
}, () => {
  let child: ChildProcess;
  let client: Client<typeof Process>;
  let origDir = '';

  before(async () => {
    origDir = mkdtempSync(join(tmpdir(), 'wrenn-busybox-'));
    child = spawn('unshare', ['--mount', '--propagation', 'private', '/bin/sh', '-c', SETUP], {
      env: { ...process.env, ENVD_SCRIPT, WRENN_ORIG_BIN: origDir },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let out = '';
    for await (const chunk of child.stdout!) {
      out += chunk;
      if (out.includes('\n')) break;
    }
    const port = Number(/port=(\d+)/.exec(out)?.[1]);
    assert.ok(port > 0, `envd in the busybox namespace did not start: ${out}`);
    client = createClient(Process, createConnectTransport({ baseUrl: `http://127.0.0.1:${port}`, httpVersion: '1.1' }));
  });

  after(async () => {
    if (child && child.exitCode === null) {
      child.stdin?.end(); // envd closes (killing its processes) and exits; the namespace goes with it
      const exited = once(child, 'exit');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    // rmdir, never a recursive delete: the directory was a mount point for /usr/bin in the namespace.
    if (origDir) rmdirSync(origDir);
  });

  test('commands.run-style `/bin/bash -l -c` runs under busybox sh', async () => {
    const r = await collectText(
      client.start({
        process: { cmd: '/bin/bash', args: ['-l', '-c', 'echo hi; readlink /proc/$$/exe'] },
        stdin: false,
      }),
    );
    assert.equal(r.exitCode, 0);
    assert.match(r.out, /^hi\n/);
    assert.match(r.out, /busybox/, 'the shell is busybox');

    // The fallback is remembered; a second start takes the short path and behaves the same.
    const again = await collectText(
      client.start({ process: { cmd: '/bin/bash', args: ['-l', '-c', 'exit 7'] }, stdin: false }),
    );
    assert.equal(again.exitCode, 7);
  });

  test('pty.create-style `/bin/bash -i -l` gives a busybox shell on a PTY', async () => {
    const stream = client.start({
      process: { cmd: '/bin/bash', args: ['-i', '-l'], envs: { PS1: '$ ' } },
      pty: { size: { cols: 90, rows: 20 } },
    });
    let out = '';
    let pid = 0;
    for await (const res of stream) {
      const e = res.event?.event;
      if (e?.case === 'start') {
        pid = e.value.pid;
        await client.sendInput({
          process: { selector: { case: 'pid', value: pid } },
          input: { input: { case: 'pty', value: Buffer.from('stty size; exit 4\n') } },
        });
      }
      if (e?.case === 'data') out += Buffer.from(e.value.output.value as Uint8Array).toString();
      if (e?.case === 'end') {
        assert.equal(e.value.exitCode, 4, out);
      }
    }
    assert.match(out, /20 90/);
    // Nothing left behind in the namespace.
    assert.equal((await client.list({})).processes.length, 0);
  });
});
