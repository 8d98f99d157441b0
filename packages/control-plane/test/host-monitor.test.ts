// The host monitor counts a host's silence from when it began asking, not from the heartbeat a
// previous control plane left in the database: after a restart (or a lease that moved), a host
// whose old heartbeat is stale is not made unreachable by the new monitor's first failed probe,
// only after the monitor itself heard nothing from it for `unreachableAfterMs`. A real (refused)
// connection stands for the agent that does not answer; no agent is started.
import assert from 'node:assert/strict';
import net from 'node:net';
import { it } from 'node:test';
import pino from 'pino';
import { AgentPool } from '../src/agents/pool.js';
import type { ControlPlaneContext } from '../src/context.js';
import { openDatabase } from '../src/db/open.js';
import { createHost, getHost } from '../src/db/repositories/hosts.js';
import { HostMonitor } from '../src/hosts/monitor.js';
import { tempDir } from './db-helpers.js';

/** A loopback port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

it('a stale heartbeat in the database does not make a host unreachable before the monitor heard nothing for unreachableAfterMs', async (t) => {
  const database = await openDatabase({ dataDir: tempDir(t) });
  t.after(() => database.close());
  const db = database.db;
  const host = await createHost(db, {
    address: `http://127.0.0.1:${await closedPort()}`,
    runtimes: ['namespace'],
    cpuCount: 2,
    memoryMb: 1024,
    agentSecret: 'x'.repeat(32),
  });
  // As a control plane that was down for a minute left it.
  await db
    .updateTable('hosts')
    .set({ last_heartbeat_at: Date.now() - 60_000 })
    .where('id', '=', host.id)
    .execute();
  const ctx = { database, agents: new AgentPool(), log: pino({ level: 'silent' }) } as unknown as ControlPlaneContext;
  const monitor = new HostMonitor(ctx, { unreachableAfterMs: 1_500, timeoutMs: 500 });
  const startedAt = Date.now();
  const first = await monitor.checkOnce();
  assert.deepEqual(first.failed, [host.id], 'the probe failed');
  assert.deepEqual(first.markedUnreachable, [], 'but the monitor has not listened long enough');
  assert.equal((await getHost(db, host.id))?.status, 'online');
  // After the monitor's own unreachableAfterMs of silence it is marked.
  let rounds = 0;
  for (;;) {
    const round = await monitor.checkOnce();
    rounds++;
    if (round.markedUnreachable.includes(host.id)) break;
    assert.ok(Date.now() - startedAt < 30_000, `not marked after ${rounds} rounds in 30 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(Date.now() - startedAt >= 1_500, 'not before the monitor listened for unreachableAfterMs');
  assert.equal((await getHost(db, host.id))?.status, 'unreachable');
});
