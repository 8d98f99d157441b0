// Every native /v1 route end to end against a live `wrenn up` (control plane + in-process host
// agent running real namespace capsules), on the database given. Declared by
// native-live-sqlite.test.ts and native-live-postgres.test.ts.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type WebSocket from 'ws';
import { createApiKey } from '../src/auth/api-keys.js';
import { createTeam } from '../src/db/repositories/teams.js';
import { type DbKind, type LiveSystem, startLive, stopPostgres, waitFor } from './e2b-live.js';
import { client, openWs } from './native-helpers.js';

type Call = ReturnType<typeof client>;

interface WsMessage {
  text?: unknown;
  binary?: Buffer;
}

/** Records every message of a socket and lets a test wait for one that matches. */
function recorder(ws: WebSocket) {
  const messages: WsMessage[] = [];
  let closed: { code: number; reason: string } | undefined;
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of waiters) w();
  };
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    messages.push(isBinary ? { binary: Buffer.from(data) } : { text: JSON.parse(data.toString('utf8')) });
    wake();
  });
  ws.on('close', (code: number, reason: Buffer) => {
    closed = { code, reason: reason.toString() };
    wake();
  });
  const until = <T>(what: string, check: () => T | undefined, timeoutMs = 20_000): Promise<T> =>
    new Promise((resolve, reject) => {
      const tryNow = () => {
        const v = check();
        if (v !== undefined) {
          clearTimeout(timer);
          waiters.delete(tryNow);
          resolve(v);
        } else if (closed) {
          clearTimeout(timer);
          waiters.delete(tryNow);
          reject(
            new Error(
              `socket closed (${closed.code} ${closed.reason}) before ${what}; got ${JSON.stringify(messages.map((m) => m.text ?? m.binary?.toString()))}`,
            ),
          );
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(tryNow);
        reject(
          new Error(
            `timed out waiting for ${what}; got ${JSON.stringify(messages.map((m) => m.text ?? m.binary?.toString()))}`,
          ),
        );
      }, timeoutMs);
      waiters.add(tryNow);
      tryNow();
    });
  return {
    messages,
    get closed() {
      return closed;
    },
    /** Terminal output so far, as text. */
    output: () => Buffer.concat(messages.flatMap((m) => (m.binary ? [m.binary] : []))).toString('utf8'),
    // biome-ignore lint/suspicious/noExplicitAny: server events of several shapes, checked by the assertions
    json: () => messages.flatMap((m) => (m.text !== undefined ? [m.text as Record<string, any>] : [])),
    until,
    closedPromise: () => until('close', () => closed, 20_000).catch(() => closed),
  };
}

export function defineNativeSuite(db: DbKind, slot: number): void {
  describe(`native API end to end against wrenn up (${db})`, () => {
    let sys: LiveSystem;
    let call: Call;
    let wsBase: string;
    const created: string[] = [];

    before(async () => {
      sys = await startLive({ db, slot });
      call = client(sys.url, sys.adminKey);
      wsBase = sys.url.replace(/^http/, 'ws');
    });
    after(async () => {
      // Destroy through the API what the tests left (and the system teardown removes the rest).
      for (const id of created) await call('DELETE', `/v1/capsules/${id}`).catch(() => undefined);
      await sys?.close();
      await stopPostgres();
    });

    // biome-ignore lint/suspicious/noExplicitAny: the capsule JSON, checked by the assertions
    async function newCapsule(body: Record<string, unknown> = {}): Promise<Record<string, any>> {
      const r = await call('POST', '/v1/capsules', { template: 'minimal', timeout_sec: 600, ...body });
      assert.equal(r.status, 201, r.text);
      created.push(r.body.id);
      return r.body;
    }
    const exec = async (id: string, body: Record<string, unknown>) => {
      const r = await call('POST', `/v1/capsules/${id}/exec`, body);
      assert.equal(r.status, 200, r.text);
      return r.body as {
        stdout: string;
        stderr: string;
        exit_code: number;
        stdout_base64?: string;
        stderr_base64?: string;
        error?: string;
      };
    };

    it('creates, gets, lists (with metadata filters) and reports hosts and events', async () => {
      const c = await newCapsule({
        metadata: { suite: 'native', n: '1' },
        env: { GREETING: 'hi there' },
        vcpus: 1,
        memory_mb: 256,
      });
      assert.match(c.id, /^cl-[0-9a-z]+$/);
      assert.equal(c.state, 'running');
      assert.equal(c.template, 'minimal');
      assert.equal(c.runtime, 'namespace');
      assert.equal(c.vcpus, 1);
      assert.equal(c.memory_mb, 256);
      assert.equal(c.host_id, sys.up.agent.hostId);
      assert.deepEqual(c.metadata, { suite: 'native', n: '1' });
      assert.ok(Date.parse(c.expires_at) > Date.now() + 500_000, 'expires about 600 s from now');

      const got = await call('GET', `/v1/capsules/${c.id}`);
      assert.equal(got.status, 200);
      assert.equal(got.body.id, c.id);
      const byMd = await call('GET', '/v1/capsules?metadata.suite=native&state=running');
      assert.deepEqual(
        byMd.body.capsules.map((x: { id: string }) => x.id),
        [c.id],
      );
      const none = await call('GET', '/v1/capsules?metadata=suite:other');
      assert.deepEqual(none.body.capsules, []);

      // The environment given at creation reaches processes.
      assert.equal((await exec(c.id, { cmd: 'echo "$GREETING"' })).stdout, 'hi there\n');

      const hosts = await call('GET', '/v1/hosts');
      assert.equal(hosts.status, 200);
      const h = hosts.body.hosts.find((x: { id: string }) => x.id === sys.up.agent.hostId);
      assert.ok(h, 'the local host is listed');
      assert.equal(h.status, 'online');
      assert.ok(h.capsules >= 1 && h.allocated_memory_mb >= 256 && h.cpu_count >= 1);

      const events = await call('GET', `/v1/capsules/${c.id}/events`);
      assert.deepEqual(
        events.body.events.map((e: { kind: string }) => e.kind),
        ['capsule.created'],
      );
      assert.equal(events.body.events[0].data.host_id, sys.up.agent.hostId);
    });

    it('exec: shell lines, argv, exit codes, stdin, env, cwd and binary-safe output', async () => {
      const c = await newCapsule();
      const sh = await exec(c.id, { cmd: 'echo out; echo err >&2; exit 3' });
      assert.deepEqual([sh.stdout, sh.stderr, sh.exit_code], ['out\n', 'err\n', 3]);
      assert.equal(sh.stdout_base64, undefined);

      const argv = await exec(c.id, { cmd: '/bin/echo', args: ['a  b', '$HOME'] });
      assert.equal(argv.stdout, 'a  b $HOME\n', 'args are passed verbatim, without a shell');

      const stdin = await exec(c.id, {
        cmd: 'cat',
        args: [],
        stdin_base64: Buffer.from('line one\nline two\n').toString('base64'),
      });
      assert.equal(stdin.stdout, 'line one\nline two\n');

      const envCwd = await exec(c.id, { cmd: 'echo "$FOO"; pwd', env: { FOO: 'bar baz' }, cwd: '/tmp' });
      assert.equal(envCwd.stdout, 'bar baz\n/tmp\n');

      const slow = await call('POST', `/v1/capsules/${c.id}/exec`, { cmd: 'sleep 30', timeout_sec: 1 });
      assert.equal(slow.status, 504, slow.text);
      assert.match(slow.body.error.message, /did not finish within timeout_sec \(1 s\)/);
      const left = await call('GET', `/v1/capsules/${c.id}/processes`);
      assert.ok(
        !left.body.processes.some((p: { cmd: string; args: string[] }) => p.args.join(' ').includes('sleep 30')),
        'the timed-out command was stopped',
      );

      const bin = await exec(c.id, { cmd: "printf '\\377\\000\\376ok'" });
      assert.equal(bin.stdout_base64, Buffer.from([0xff, 0x00, 0xfe, 0x6f, 0x6b]).toString('base64'));
      assert.equal(bin.exit_code, 0);
    });

    it('exec/stream over WebSocket: start, stdout/stderr as base64, exit; kill on request', async () => {
      const c = await newCapsule();
      const ws = await openWs(`${wsBase}/v1/capsules/${c.id}/exec/stream`, { 'x-api-key': sys.adminKey });
      const rec = recorder(ws);
      ws.send(JSON.stringify({ cmd: 'echo one; sleep 0.2; echo two >&2; exit 7' }));
      const exit = await rec.until('exit', () => rec.json().find((m) => m.type === 'exit'));
      assert.equal(exit.exit_code, 7);
      const evs = rec.json();
      assert.equal(evs[0]!.type, 'start');
      assert.ok(evs[0]!.pid > 0);
      const text = (type: string) =>
        evs
          .filter((m) => m.type === type)
          .map((m) => Buffer.from(m.data, 'base64').toString())
          .join('');
      assert.equal(text('stdout'), 'one\n');
      assert.equal(text('stderr'), 'two\n');
      await rec.closedPromise();
      assert.equal(rec.closed?.code, 1000);

      // Browsers authenticate with ?api_key=; {type:'kill'} ends a long command.
      const ws2 = await openWs(`${wsBase}/v1/capsules/${c.id}/exec/stream?api_key=${sys.adminKey}`);
      const rec2 = recorder(ws2);
      ws2.send(JSON.stringify({ cmd: 'sleep', args: ['300'] }));
      const start = await rec2.until('start', () => rec2.json().find((m) => m.type === 'start'));
      const procs = await call('GET', `/v1/capsules/${c.id}/processes`);
      assert.ok(
        procs.body.processes.some((p: { pid: number; cmd: string }) => p.pid === start.pid && p.cmd === 'sleep'),
        procs.text,
      );
      ws2.send(JSON.stringify({ type: 'kill' }));
      const killed = await rec2.until('exit after kill', () => rec2.json().find((m) => m.type === 'exit'));
      assert.notEqual(killed.exit_code, 0);

      // A bad first message closes the socket with the reason.
      const ws3 = await openWs(`${wsBase}/v1/capsules/${c.id}/exec/stream`, { 'x-api-key': sys.adminKey });
      const rec3 = recorder(ws3);
      ws3.send(JSON.stringify({ args: ['no cmd'] }));
      const err = await rec3.until('error', () => rec3.json().find((m) => m.type === 'error'));
      assert.match(err.error.message, /cmd/);
      await rec3.closedPromise();
      assert.equal(rec3.closed?.code, 1008);

      // exec/stream is /commands' protocol: stdin and close_stdin work here too.
      const ws4 = await openWs(`${wsBase}/v1/capsules/${c.id}/exec/stream`, { 'x-api-key': sys.adminKey });
      const rec4 = recorder(ws4);
      ws4.send(JSON.stringify({ cmd: 'tr a-z A-Z', stdin: true }));
      await rec4.until('start', () => rec4.json().find((m) => m.type === 'start'));
      ws4.send(JSON.stringify({ type: 'stdin', data: Buffer.from('same protocol\n').toString('base64') }));
      ws4.send(JSON.stringify({ type: 'close_stdin' }));
      const done = await rec4.until('exit', () => rec4.json().find((m) => m.type === 'exit'));
      assert.equal(done.exit_code, 0);
      const upper = rec4
        .json()
        .filter((m) => m.type === 'stdout')
        .map((m) => Buffer.from(m.data, 'base64').toString())
        .join('');
      assert.equal(upper, 'SAME PROTOCOL\n');
    });

    it('processes: list and kill through DELETE', async () => {
      const c = await newCapsule();
      const ws = await openWs(`${wsBase}/v1/capsules/${c.id}/exec/stream`, { 'x-api-key': sys.adminKey });
      const rec = recorder(ws);
      ws.send(JSON.stringify({ cmd: 'sleep 300' }));
      const start = await rec.until('start', () => rec.json().find((m) => m.type === 'start'));
      const listed = await call('GET', `/v1/capsules/${c.id}/processes`);
      assert.ok(
        listed.body.processes.some((p: { pid: number }) => p.pid === start.pid),
        listed.text,
      );
      assert.equal((await call('DELETE', `/v1/capsules/${c.id}/processes/${start.pid}`)).status, 204);
      const exit = await rec.until('exit', () => rec.json().find((m) => m.type === 'exit'));
      assert.notEqual(exit.exit_code, 0);
      const after = await call('GET', `/v1/capsules/${c.id}/processes`);
      assert.ok(!after.body.processes.some((p: { pid: number }) => p.pid === start.pid));
      assert.equal((await call('DELETE', `/v1/capsules/${c.id}/processes/999999`)).status, 404);
    });

    it('pty over WebSocket: typing, resize, and re-attaching to the same shell by tag', async () => {
      const c = await newCapsule();
      const tag = `t-${randomBytes(3).toString('hex')}`;
      const url = `${wsBase}/v1/capsules/${c.id}/pty?cols=100&rows=30&tag=${tag}`;
      const ws = await openWs(url, { 'x-api-key': sys.adminKey });
      const rec = recorder(ws);
      const start = await rec.until('start', () => rec.json().find((m) => m.type === 'start'));
      assert.equal(start.tag, tag);
      ws.send(Buffer.from('MARK=kept$((6*7)); echo "v=$MARK"\n'), { binary: true });
      await rec.until('echo output', () => (rec.output().includes('v=kept42') ? true : undefined));
      ws.send(Buffer.from('stty size\n'), { binary: true });
      await rec.until('size 30 100', () => (rec.output().includes('30 100') ? true : undefined));
      ws.send(JSON.stringify({ type: 'resize', cols: 120, rows: 40 }));
      // The resize is applied asynchronously: ask until the terminal reports it.
      await waitFor('resized terminal', async () => {
        ws.send(Buffer.from('stty size\n'), { binary: true });
        await new Promise((r) => setTimeout(r, 150));
        return rec.output().includes('40 120') ? true : undefined;
      });
      ws.close();
      await rec.closedPromise();

      // Same tag: the same shell, with its variable still set.
      const ws2 = await openWs(url, { 'x-api-key': sys.adminKey });
      const rec2 = recorder(ws2);
      const start2 = await rec2.until('start', () => rec2.json().find((m) => m.type === 'start'));
      assert.equal(start2.pid, start.pid, 're-attached to the same process');
      ws2.send(Buffer.from('echo "again=$MARK"\n'), { binary: true });
      await rec2.until('variable survives re-attach', () =>
        rec2.output().includes('again=kept42') ? true : undefined,
      );
      ws2.send(Buffer.from('exit 5\n'), { binary: true });
      const exit = await rec2.until('exit', () => rec2.json().find((m) => m.type === 'exit'));
      assert.equal(exit.exit_code, 5);
    });

    it('files: streamed upload and download (binary, 3 MiB), list, mkdir, delete', async () => {
      const c = await newCapsule();
      const data = randomBytes(3 * 1024 * 1024 + 17);
      const up = await call('PUT', `/v1/capsules/${c.id}/files?path=/home/user/in/data.bin`, data, {
        'content-type': 'application/octet-stream',
      });
      assert.equal(up.status, 200, up.text);
      assert.equal(up.body.bytes_written, data.length);
      assert.equal(up.body.entry.size, data.length);
      // A JSON content type is still a raw upload: the body is the file.
      const json = await call('PUT', `/v1/capsules/${c.id}/files?path=/home/user/in/x.json`, '{"a": 1}', {
        'content-type': 'application/json',
      });
      assert.equal(json.status, 200, json.text);

      const down = await fetch(`${sys.url}/v1/capsules/${c.id}/files?path=/home/user/in/data.bin`, {
        headers: { 'x-api-key': sys.adminKey },
      });
      assert.equal(down.status, 200);
      assert.equal(down.headers.get('content-type'), 'application/octet-stream');
      assert.ok(Buffer.from(await down.arrayBuffer()).equals(data), 'downloaded bytes equal uploaded bytes');
      assert.equal((await exec(c.id, { cmd: 'cat /home/user/in/x.json' })).stdout, '{"a": 1}');

      const mk = await call('POST', `/v1/capsules/${c.id}/files/mkdir`, { path: '/home/user/in/a/b' });
      assert.equal(mk.status, 200, mk.text);
      assert.equal(mk.body.entry.type, 'dir');
      const list = await call('GET', `/v1/capsules/${c.id}/files/list?path=/home/user/in`);
      assert.equal(list.status, 200, list.text);
      const names = list.body.entries.map((e: { name: string; type: string }) => `${e.name}:${e.type}`).sort();
      assert.deepEqual(names, ['a:dir', 'data.bin:file', 'x.json:file']);
      const deep = await call('GET', `/v1/capsules/${c.id}/files/list?path=/home/user/in&depth=2`);
      assert.ok(deep.body.entries.some((e: { path: string }) => e.path === '/home/user/in/a/b'));

      assert.equal((await call('DELETE', `/v1/capsules/${c.id}/files?path=/home/user/in/data.bin`)).status, 204);
      const gone = await call('GET', `/v1/capsules/${c.id}/files?path=/home/user/in/data.bin`);
      assert.equal(gone.status, 404, gone.text);
      assert.equal(gone.body.error.code, 'not_found');
      const noPath = await call('GET', `/v1/capsules/${c.id}/files`);
      assert.equal(noPath.status, 400);
      assert.match(noPath.body.error.message, /path/);
    });

    it('timeout, ping and metrics', async () => {
      const c = await newCapsule({ timeout_sec: 120 });
      const set = await call('POST', `/v1/capsules/${c.id}/timeout`, { timeout_sec: 3600 });
      assert.equal(set.status, 200, set.text);
      assert.equal(set.body.timeout_sec, 3600);
      assert.ok(Date.parse(set.body.expires_at) > Date.now() + 3500_000);
      const agentSide = sys.up.agent.manager.get(c.id);
      assert.ok(agentSide.expiresAt > Date.now() + 3500_000, 'the agent got the new timeout too');
      await new Promise((r) => setTimeout(r, 20));
      const ping = await call('POST', `/v1/capsules/${c.id}/ping`);
      assert.equal(ping.status, 200);
      assert.ok(Date.parse(ping.body.expires_at) >= Date.parse(set.body.expires_at));

      const m = await call('GET', `/v1/capsules/${c.id}/metrics`);
      assert.equal(m.status, 200, m.text);
      assert.ok(m.body.mem_used_bytes > 0, m.text);
      assert.ok(m.body.pids >= 1, m.text);
      assert.equal(m.body.cpu_count, 1);
    });

    it('pause (freeze) and resume keep processes and files; hibernate and resume keep files', async () => {
      const c = await newCapsule();
      await exec(c.id, { cmd: 'echo kept > /home/user/state.txt' });
      const ws = await openWs(`${wsBase}/v1/capsules/${c.id}/exec/stream`, { 'x-api-key': sys.adminKey });
      const rec = recorder(ws);
      ws.send(JSON.stringify({ cmd: 'sleep 600' }));
      const start = await rec.until('start', () => rec.json().find((m) => m.type === 'start'));

      const p = await call('POST', `/v1/capsules/${c.id}/pause`, { mode: 'freeze' });
      assert.equal(p.status, 200, p.text);
      assert.equal(p.body.state, 'paused');
      const blocked = await call('POST', `/v1/capsules/${c.id}/exec`, { cmd: 'true' });
      assert.equal(blocked.status, 409);
      assert.equal((await call('POST', `/v1/capsules/${c.id}/pause`)).status, 409);
      const r = await call('POST', `/v1/capsules/${c.id}/resume`, { timeout_sec: 900 });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.state, 'running');
      assert.equal(r.body.timeout_sec, 900);
      const procs = await call('GET', `/v1/capsules/${c.id}/processes`);
      assert.ok(
        procs.body.processes.some((x: { pid: number }) => x.pid === start.pid),
        'the process survived the freeze',
      );
      ws.close();

      const h = await call('POST', `/v1/capsules/${c.id}/pause`, { mode: 'hibernate' });
      assert.equal(h.status, 200, h.text);
      assert.ok(h.body.state === 'hibernated' || h.body.state === 'paused', h.text);
      const r2 = await call('POST', `/v1/capsules/${c.id}/resume`);
      assert.equal(r2.status, 200, r2.text);
      assert.equal(r2.body.state, 'running');
      assert.equal((await exec(c.id, { cmd: 'cat /home/user/state.txt' })).stdout, 'kept\n');

      const kinds = (await call('GET', `/v1/capsules/${c.id}/events`)).body.events.map((e: { kind: string }) => e.kind);
      assert.deepEqual(kinds, [
        'capsule.created',
        'capsule.paused',
        'capsule.resumed',
        'capsule.paused',
        'capsule.resumed',
      ]);
    });

    it('snapshots: create from a capsule, start capsules from it, refuse deleting while used, delete', async () => {
      const c = await newCapsule({ memory_mb: 320 });
      await exec(c.id, { cmd: 'echo from-snapshot > /home/user/marker' });
      const s = await call('POST', '/v1/snapshots', { capsule_id: c.id, name: 'native-snap' });
      assert.equal(s.status, 201, s.text);
      assert.equal(s.body.name, 'native-snap');
      assert.equal(s.body.kind, 'snapshot');
      assert.equal(s.body.builtin, false);
      assert.equal(s.body.host_id, sys.up.agent.hostId);
      assert.equal(s.body.parent, 'minimal');
      const dup = await call('POST', '/v1/snapshots', { capsule_id: c.id, name: 'native-snap' });
      assert.equal(dup.status, 409, dup.text);
      const builtinName = await call('POST', '/v1/snapshots', { capsule_id: c.id, name: 'minimal' });
      assert.equal(builtinName.status, 409);

      const listed = await call('GET', '/v1/snapshots');
      assert.deepEqual(
        listed.body.snapshots.map((x: { name: string }) => x.name),
        ['native-snap'],
      );
      const templates = await call('GET', '/v1/templates');
      assert.deepEqual(
        templates.body.templates.map((x: { name: string }) => x.name),
        ['base', 'code-interpreter-v1', 'minimal', 'native-snap'],
      );

      const child = await newCapsule({ template: 'native-snap' });
      assert.equal(child.template, 'native-snap');
      assert.equal(child.memory_mb, 320, 'a snapshot keeps the shape it was taken with');
      assert.equal((await exec(child.id, { cmd: 'cat /home/user/marker' })).stdout, 'from-snapshot\n');
      const listByTemplate = await call('GET', '/v1/capsules?template=native-snap');
      assert.deepEqual(
        listByTemplate.body.capsules.map((x: { id: string }) => x.id),
        [child.id],
      );

      const refused = await call('DELETE', '/v1/snapshots/native-snap');
      assert.equal(refused.status, 409);
      assert.ok(refused.body.error.message.includes(child.id), refused.text);
      assert.equal((await call('DELETE', `/v1/capsules/${child.id}`)).status, 204);
      assert.equal((await call('DELETE', '/v1/snapshots/native-snap')).status, 204);
      assert.deepEqual((await call('GET', '/v1/snapshots')).body.snapshots, []);
      const agentTemplates = await sys.up.agent.manager.templates().list();
      assert.ok(!agentTemplates.some((t) => t.name === s.body.id), 'the files are gone from the host');
      assert.equal((await call('POST', '/v1/capsules', { template: 'native-snap' })).status, 404);

      // The same via /v1/templates.
      const s2 = await call('POST', '/v1/snapshots', { capsule_id: c.id, name: 'native-snap-2' });
      assert.equal(s2.status, 201, s2.text);
      assert.equal((await call('DELETE', '/v1/templates/native-snap-2')).status, 204);
    });

    it('destroy: 204, then stopped with the agent free of it, 404 on repeat; other teams never see it', async () => {
      const c = await newCapsule();
      const team = await createTeam(sys.cp.ctx.database.db, { name: 'stranger' });
      const { key } = await createApiKey(sys.cp.ctx.database.db, { teamId: team.id, name: 'k' });
      const stranger = client(sys.url, key);
      assert.equal((await stranger('GET', `/v1/capsules/${c.id}`)).status, 404);
      assert.equal((await stranger('DELETE', `/v1/capsules/${c.id}`)).status, 404);
      assert.equal((await stranger('POST', `/v1/capsules/${c.id}/exec`, { cmd: 'true' })).status, 404);
      await assert.rejects(
        openWs(`${wsBase}/v1/capsules/${c.id}/pty`, { 'x-api-key': key }),
        (e: { status?: number }) => e.status === 404,
      );

      const d = await call('DELETE', `/v1/capsules/${c.id}`);
      assert.equal(d.status, 204);
      assert.ok(!sys.up.agent.manager.list().some((x) => x.id === c.id), 'the agent no longer has it');
      const after = await call('GET', `/v1/capsules/${c.id}`);
      assert.equal(after.body.state, 'stopped');
      assert.ok(after.body.stopped_at);
      assert.equal((await call('DELETE', `/v1/capsules/${c.id}`)).status, 404);
      assert.equal((await call('POST', `/v1/capsules/${c.id}/exec`, { cmd: 'true' })).status, 409);
      const list = await call('GET', '/v1/capsules');
      assert.ok(!list.body.capsules.some((x: { id: string }) => x.id === c.id));
      const kinds = (await call('GET', `/v1/capsules/${c.id}/events`)).body.events.map((e: { kind: string }) => e.kind);
      assert.deepEqual(kinds, ['capsule.created', 'capsule.destroyed']);

      const metrics = await (await fetch(`${sys.url}/metrics`)).text();
      assert.match(metrics, /wrenn_capsules\{[^}]*state="stopped"[^}]*\} [1-9]/);
    });
  });
}
