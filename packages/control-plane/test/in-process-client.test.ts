// The in-process agent client against the real Connect transport: the same service implementation
// is called both ways (directly, and over HTTP/2 through connect-node on loopback) and each check
// must hold for both, so `wrenn up`'s direct calls behave as calls to a remote agent do.

import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { Code, ConnectError, createClient, type HandlerContext, type ServiceImpl } from '@connectrpc/connect';
import { connectNodeAdapter, createConnectTransport } from '@connectrpc/connect-node';
import { HostAgentService } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import { createInProcessClient } from '../src/agents/in-process-client.js';

/** What the handlers saw: contexts that ended (signal aborted), stream handlers that finished. */
interface Seen {
  aborted: string[];
  finished: string[];
}

function implementation(seen: Seen): Partial<ServiceImpl<typeof HostAgentService>> {
  const watch = (name: string, ctx: HandlerContext) =>
    ctx.signal.addEventListener('abort', () => seen.aborted.push(name), { once: true });
  return {
    async getCapsule(req) {
      if (req.id === 'missing') throw new ConnectError(`capsule ${req.id} not found`, Code.NotFound);
      if (req.id === 'broken') throw new Error('disk on fire');
      return { capsule: { id: req.id, template: 'minimal', vcpus: 2 } };
    },
    async pingCapsule(_req, ctx) {
      watch('ping', ctx);
      // Never answers: only the caller's deadline or signal ends the call.
      await new Promise(() => undefined);
      return {};
    },
    async *readFile(req, ctx) {
      watch('readFile', ctx);
      try {
        for (let i = 0; !ctx.signal.aborted; i++) {
          if (req.path === '/three' && i === 3) return;
          yield { data: Buffer.from(`chunk-${i}`) };
          await new Promise((r) => setTimeout(r, 5));
        }
      } finally {
        seen.finished.push('readFile');
      }
    },
    async writeFile(reqs) {
      let path = '';
      let n = 0;
      for await (const r of reqs) {
        if (r.part.case === 'header') path = r.part.value.path;
        else if (r.part.case === 'data') n += r.part.value.length;
      }
      return { bytesWritten: BigInt(n), entry: { path } };
    },
  };
}

async function withBothClients(
  fn: (name: string, client: ReturnType<typeof createClient<typeof HostAgentService>>, seen: Seen) => Promise<void>,
): Promise<void> {
  const wire: Seen = { aborted: [], finished: [] };
  const server = http2.createServer(
    connectNodeAdapter({ routes: (r) => r.service(HostAgentService, implementation(wire)) }),
  );
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => sessions.add(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const transport = createConnectTransport({
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    httpVersion: '2',
    useBinaryFormat: true,
  });
  try {
    await fn('wire', createClient(HostAgentService, transport), wire);
  } finally {
    for (const s of sessions) s.destroy();
    await new Promise((r) => server.close(r));
  }

  const direct: Seen = { aborted: [], finished: [] };
  await fn(
    'in-process',
    createInProcessClient(HostAgentService, implementation(direct) as ServiceImpl<typeof HostAgentService>),
    direct,
  );
}

const waitFor = async (cond: () => boolean) => {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  return cond();
};

test('unary calls: messages of their schema with defaults, and errors as ConnectErrors with their codes', async () => {
  await withBothClients(async (name, client) => {
    const res = await client.getCapsule({ id: 'cl-1' });
    assert.equal(res.$typeName, 'hostagent.v1.GetCapsuleResponse', name);
    assert.equal(res.capsule?.id, 'cl-1');
    assert.equal(res.capsule?.vcpus, 2);
    assert.equal(res.capsule?.memoryMb, 0, `${name}: unset fields read as their defaults`);
    await assert.rejects(
      client.getCapsule({ id: 'missing' }),
      (e: unknown) => e instanceof ConnectError && e.code === Code.NotFound && /not found/.test(e.rawMessage),
      name,
    );
    // A plain error: internal, its message not shown (the agent's own service maps its errors first).
    await assert.rejects(
      client.getCapsule({ id: 'broken' }),
      (e: unknown) => e instanceof ConnectError && e.code === Code.Internal && e.rawMessage === 'internal error',
      name,
    );
  });
});

test("a call's deadline and signal end it, and the handler's context with it", async () => {
  await withBothClients(async (name, client, seen) => {
    await assert.rejects(
      client.pingCapsule({ id: 'x' }, { timeoutMs: 50 }),
      (e: unknown) => ConnectError.from(e).code === Code.DeadlineExceeded,
      name,
    );
    assert.ok(await waitFor(() => seen.aborted.includes('ping')), `${name}: the handler saw the deadline`);
    seen.aborted.length = 0;
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 30);
    await assert.rejects(
      client.pingCapsule({ id: 'x' }, { signal: ac.signal }),
      (e: unknown) => ConnectError.from(e).code === Code.Canceled,
      name,
    );
    assert.ok(await waitFor(() => seen.aborted.includes('ping')), `${name}: the handler saw the cancel`);
  });
});

test('streams: server streams end with their handler; a reader that stops or aborts ends the handler; client streams arrive whole', async () => {
  await withBothClients(async (name, client, seen) => {
    const all: string[] = [];
    for await (const c of client.readFile({ path: '/three' })) all.push(Buffer.from(c.data).toString());
    assert.deepEqual(all, ['chunk-0', 'chunk-1', 'chunk-2'], name);
    assert.ok(await waitFor(() => seen.finished.length === 1), name);

    // Stops after two of an endless stream: the handler's context ends (handlers pass its signal on).
    let n = 0;
    for await (const _ of client.readFile({ path: '/endless' })) if (++n === 2) break;
    assert.ok(
      await waitFor(() => seen.aborted.filter((x) => x === 'readFile').length === 1),
      `${name}: the handler's context ended when the reader stopped`,
    );

    const ac = new AbortController();
    const reading = (async () => {
      for await (const _ of client.readFile({ path: '/endless' }, { signal: ac.signal })) ac.abort();
    })();
    await assert.rejects(reading, (e: unknown) => ConnectError.from(e).code === Code.Canceled, name);
    assert.ok(
      await waitFor(() => seen.aborted.filter((x) => x === 'readFile').length === 2),
      `${name}: the handler's context ended on abort`,
    );

    async function* parts() {
      yield { part: { case: 'header' as const, value: { capsuleId: 'cl-1', path: '/f' } } };
      for (let i = 0; i < 10; i++) yield { part: { case: 'data' as const, value: Buffer.alloc(1000, i) } };
    }
    const w = await client.writeFile(parts());
    assert.equal(w.bytesWritten, 10_000n, name);
    assert.equal(w.entry?.path, '/f', name);
  });
});
