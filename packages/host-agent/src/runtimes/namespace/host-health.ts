// The optional second readiness check of a namespace capsule: envd already answered inside the
// capsule; GET /health from the host over the capsule's network proves the path the agent will use
// (routing and firewall) at the cost of one connection set-up.
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

/** GET `path` at ip:port from the host until it answers 2xx, or fail after `timeoutMs`. */
export async function waitForHealth(ip: string, port: number, path: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const status = await new Promise<number>((res) => {
      const req = http.get({ host: ip, port, path, timeout: 1000, agent: false }, (r) => {
        r.resume();
        res(r.statusCode ?? 0);
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (err) => {
        last = err.message;
        res(0);
      });
    });
    if (status >= 200 && status < 300) return;
    if (status) last = `HTTP ${status}`;
    if (Date.now() > deadline)
      throw new Error(
        `envd answered inside the capsule but not at http://${ip}:${port}${path} from the host (${last}): check the capsule network`,
      );
    await sleep(5);
  }
}
