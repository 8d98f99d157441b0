#!/usr/bin/env node
// Starts envd's bundle with the given node (as a capsule does: no flags, a ready pipe as fd 3),
// runs its first command (`Start /bin/true`), then stops it. For whole-process timing from outside
// (CPU and wall, this wrapper's own start included), e.g. to compare node lines pair by pair:
//   /usr/bin/time -v node bench/lib/envd-until-ready.mjs /usr/bin/node <tree20>/packages/envd/dist/bundle/start.cjs
//   /usr/bin/time -v node bench/lib/envd-until-ready.mjs <node22> <tree22>/packages/envd/dist/bundle/start.cjs
import { spawn } from 'node:child_process';
import { once } from 'node:events';

const [node, startFile] = process.argv.slice(2);
if (!node || !startFile) {
  console.error('usage: envd-until-ready.mjs <node binary> <bundle start.cjs>');
  process.exit(2);
}
const env = { PATH: '/usr/bin:/bin', HOME: '/root', LANG: 'C.UTF-8', WRENN_READY_FD: '3' };
const child = spawn(node, [startFile, '--port', '0', '--host', '127.0.0.1'], {
  env,
  stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
});
let stderr = '';
let ready = false;
const port = await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error(`envd not ready within 15 s: ${stderr}`)), 15_000);
  // Ready (fd 3) and the port (its log line on stderr) may come in either order.
  const check = () => {
    const m = /"msg":"envd listening","port":(\d+)/.exec(stderr);
    if (ready && m) {
      clearTimeout(timer);
      resolve(Number(m[1]));
    }
  };
  child.stderr.on('data', (d) => {
    stderr += d;
    check();
  });
  child.stdio[3].on('data', () => {
    ready = true;
    check();
  });
  child.once('exit', (code) => reject(new Error(`envd exited with ${code}: ${stderr}`)));
});
const body = Buffer.from(JSON.stringify({ process: { cmd: '/bin/true', args: [] } }));
const envelope = Buffer.concat([Buffer.alloc(5), body]);
envelope.writeUInt32BE(body.length, 1);
const res = await fetch(`http://127.0.0.1:${port}/process.Process/Start`, {
  method: 'POST',
  headers: { 'content-type': 'application/connect+json', 'connect-protocol-version': '1' },
  body: envelope,
});
if (!(await res.text()).includes('"end"')) throw new Error('the first Start had no end event');
if (/code cache rejected|Error/.test(stderr)) throw new Error(`envd complained: ${stderr}`);
child.kill('SIGKILL');
await once(child, 'exit');
