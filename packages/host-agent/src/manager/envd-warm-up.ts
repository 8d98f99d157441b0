// A freshly started envd has compiled none of its request paths yet: V8 compiles each function on
// its first call, so the first /init, command and file call of a new capsule each pay tens of
// milliseconds. A pooled capsule is booted ahead of demand, so it runs those paths once before it
// is offered; the user's first calls then find them compiled. Nothing here changes the capsule's
// state that a user could see: no token, no environment, a no-op command as root, a stat of "/".
import { createEnvdClient, runInCapsule } from '../envd-client/index.js';

/** Rounds of the warm-up: V8 compiles on the first call, and inline caches settle over a few more. */
const ROUNDS = 3;

export async function warmUpEnvd(address: string): Promise<void> {
  const client = createEnvdClient(address);
  try {
    for (let round = 0; round < ROUNDS; round++) {
      // An empty /init: no token, no variables (the claim's /init sets them).
      const init = await client.request('POST', '/init', {
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      if (init.status !== 204 && init.status !== 200) throw new Error(`envd /init answered ${init.status}`);
      // The e2b SDK's form of every command (envd falls back to /bin/sh where bash is missing).
      const code = await runInCapsule(client, '/bin/bash', ['-l', '-c', 'true']);
      if (code !== 0) throw new Error(`warm-up command exited with ${code}`);
      // Commands run as the template's default user, `user` on the built-in ones (switching identity
      // is its own path in envd); a template without that user just skips this step.
      await runInCapsule(client, 'true', [], 'user').catch(() => undefined);
      await client.filesystem.stat(
        { path: '/' },
        { headers: { authorization: `Basic ${Buffer.from('root:').toString('base64')}` } },
      );
      await client.request('GET', '/health');
    }
  } finally {
    client.close();
  }
}
