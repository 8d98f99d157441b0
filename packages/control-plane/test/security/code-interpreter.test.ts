// Hostile probes for the code-interpreter server (port 49999 in every code-interpreter-v1
// capsule): code run through runCode in capsule A (kernels run as the capsule's root, as E2B's
// do), and as the unprivileged `user`, tries to reach capsule B's server and envd directly over
// the capsules' network; both must fail while B keeps executing code. The kernel's environment
// must carry none of envd's secrets, and `user` must not reach the Python kernel's key or its
// ZeroMQ sockets. Network slot 8 (the security suite's).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Sandbox } from '@e2b/code-interpreter';
import { type LiveSystem, SHARED_IMAGES, startLive } from '../e2b-live.js';

const probe = (target: string, port: number) =>
  [
    'import socket',
    'try:',
    `    socket.create_connection((${JSON.stringify(target)}, ${port}), timeout=3).close()`,
    '    print("CONNECTED")',
    'except OSError as e:',
    '    print("REFUSED", type(e).__name__)',
  ].join('\n');

describe('code-interpreter server: hostile probes', () => {
  let sys: LiveSystem;
  let a: Sandbox;
  let b: Sandbox;
  let bAddress = '';
  before(async () => {
    sys = await startLive({ db: 'sqlite', slot: 8, imagesDir: SHARED_IMAGES });
    const opts = { ...sys.sdk(), timeoutMs: 600_000 };
    [a, b] = await Promise.all([Sandbox.create(opts), Sandbox.create(opts)]);
    bAddress = sys.up.agent.manager.get(b.sandboxId)?.address ?? '';
    assert.match(bAddress, /^\d+\.\d+\.\d+\.\d+$/);
  });
  after(async () => {
    await a?.kill().catch(() => undefined);
    await b?.kill().catch(() => undefined);
    await sys?.close();
  });

  it("cannot reach a neighbour's code-interpreter server or envd from a kernel", async () => {
    for (const port of [49999, 49983]) {
      const r = await a.runCode(probe(bAddress, port));
      assert.match(r.logs.stdout.join(''), /^REFUSED/, `port ${port}: ${r.logs.stdout.join('')}`);
    }
    // As the unprivileged user inside A: contained too.
    const asUser = await a.runCode(
      `cat > /tmp/probe.py <<'PY'\n${probe(bAddress, 49999)}\nPY\nsu user -s /bin/sh -c 'python3 /tmp/probe.py' 2>&1`,
      { language: 'bash' },
    );
    assert.match(asUser.logs.stdout.join(''), /^REFUSED/, asUser.logs.stdout.join(''));
    // The neighbour keeps working.
    assert.equal((await b.runCode('6 * 7')).text, '42');
  });

  it("keeps the kernel's signing key and ZeroMQ sockets from the unprivileged user", async () => {
    // The server's Python kernel binds ipc:// sockets in a root-only directory holding the
    // connection file (its HMAC key): `user` can neither read the key nor connect to a socket.
    // (The capsule's root can, as in E2B's sandboxes, where kernels run as root too.)
    const r = await a.runCode(
      [
        'd=$(ls -d /tmp/wrenn-kernel-* | head -1); echo "DIR $d"',
        `su user -s /bin/sh -c "cat $d/connection.json" >/dev/null 2>&1 && echo KEY-READ || echo KEY-DENIED`,
        `su user -s /bin/sh -c "python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])' $d/k-1" >/dev/null 2>&1 && echo SHELL-CONNECTED || echo SHELL-DENIED`,
      ].join('\n'),
      { language: 'bash' },
    );
    const out = r.logs.stdout.join('');
    assert.match(out, /^DIR \/tmp\/wrenn-kernel-\S+$/m, out);
    assert.match(out, /^KEY-DENIED$/m, out);
    assert.match(out, /^SHELL-DENIED$/m, out);
    // The kernel behind it keeps working, and so does the neighbour.
    assert.equal((await a.runCode('6 * 7')).text, '42');
    assert.equal((await b.runCode('6 * 7')).text, '42');
  });

  it("keeps envd's secrets out of the kernel's environment", async () => {
    const r = await a.runCode(
      'import os\nsorted(k for k in os.environ if "TOKEN" in k or "SECRET" in k or k.startswith("WRENN_ENVD"))',
    );
    assert.equal(r.error, undefined, r.error?.traceback);
    assert.equal(r.text, '[]');
  });
});
