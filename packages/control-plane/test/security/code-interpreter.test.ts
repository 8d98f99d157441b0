// Hostile probes for the code-interpreter server (port 49999 in every code-interpreter-v1
// capsule): code run through runCode in capsule A (kernels run as the capsule's root, as E2B's
// do), and as the unprivileged `user`, tries to reach capsule B's server and envd directly over
// the capsules' network; both must fail while B keeps executing code. The kernel's environment
// must carry none of envd's secrets. Network slot 8 (the security suite's).

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

  it("keeps envd's secrets out of the kernel's environment", async () => {
    const r = await a.runCode(
      'import os\nsorted(k for k in os.environ if "TOKEN" in k or "SECRET" in k or k.startswith("WRENN_ENVD"))',
    );
    assert.equal(r.error, undefined, r.error?.traceback);
    assert.equal(r.text, '[]');
  });
});
