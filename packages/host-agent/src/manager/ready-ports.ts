// A template's services must answer before a capsule from it is handed out: code-interpreter-v1's
// server on 49999 starts its Python kernel before it listens, so a user's first runCode never
// meets a closed port or a booting kernel. Polled with TCP connects to the capsule's address.
import { connect } from 'node:net';

/** How long a template service may take to listen after envd is up (a kernel boot on a busy host). */
export const READY_PORTS_TIMEOUT_MS = Number(process.env.WRENN_READY_PORTS_TIMEOUT_MS ?? 120_000);

function accepts(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: address, port, timeout: 1000 });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('timeout', () => done(false));
    s.once('error', () => done(false));
  });
}

export async function waitForReadyPorts(
  address: string,
  ports: readonly number[] | undefined,
  timeoutMs = READY_PORTS_TIMEOUT_MS,
): Promise<void> {
  if (!ports?.length) return;
  const deadline = Date.now() + timeoutMs;
  for (const port of ports) {
    let delay = 5;
    while (!(await accepts(address, port))) {
      if (Date.now() > deadline)
        throw new Error(`the template's service on port ${port} did not listen within ${timeoutMs / 1000} s`);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 100);
    }
  }
}
