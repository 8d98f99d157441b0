// The SDK end to end against a live `wrenn up` (real namespace capsules): every Capsule method,
// commands (foreground, background, stdin, re-attach), terminals, files (text, bytes, streams,
// many files, watch), the proxy URLs, snapshots, templates and the typed errors.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { type Live, startLive } from '@wrenn/control-plane/testing';
import {
  AuthenticationError,
  Capsule,
  CapsuleGoneError,
  CommandExitError,
  type CommandHandle,
  type FilesystemEvent,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  Snapshot,
  Template,
  TimeoutError,
  Volume,
} from '../src/index.js';

const waitUntil = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000) => {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

describe('@wrenn/sdk against wrenn up', () => {
  let live: Live;
  let opts: { apiKey: string; baseUrl: string };
  let cap: Capsule;
  const extra: Capsule[] = [];

  before(async () => {
    live = await startLive(6, 'sdk');
    opts = { apiKey: live.apiKey, baseUrl: live.url };
    cap = await Capsule.create({
      ...opts,
      template: 'minimal',
      timeoutSec: 600,
      envs: { GREETING: 'hello capsule' },
      metadata: { suite: 'sdk' },
    });
  });
  after(async () => {
    for (const c of [cap, ...extra]) await c?.destroy().catch(() => undefined);
    await live?.close();
  });

  it('creates, gets, lists and reports on a capsule', async () => {
    assert.match(cap.capsuleId, /^cl-[0-9a-z]+$/);
    assert.equal(cap.info.state, 'running');
    assert.equal(cap.info.template, 'minimal');
    assert.deepEqual(cap.info.metadata, { suite: 'sdk' });
    const got = await Capsule.get(cap.capsuleId, opts);
    assert.equal(got.capsuleId, cap.capsuleId);
    const listed = await Capsule.list({ ...opts, metadata: { suite: 'sdk' } });
    assert.deepEqual(
      listed.map((c) => c.capsuleId),
      [cap.capsuleId],
    );
    assert.deepEqual(await Capsule.list({ ...opts, metadata: { suite: 'other' } }), []);
    assert.deepEqual(
      (await Capsule.list({ ...opts, state: 'running' })).some((c) => c.capsuleId === cap.capsuleId),
      true,
    );
    const info = await cap.getInfo();
    assert.equal(info.state, 'running');
    const before = info.expiresAt!.getTime();
    const t = await cap.setTimeout(1200);
    assert.equal(t.timeoutSec, 1200);
    assert.ok(t.expiresAt!.getTime() > before + 500_000, 'timeout moved about 600 s later');
    const p = await cap.ping();
    assert.equal(p.state, 'running');
    const m = await cap.getMetrics();
    assert.ok(m.memUsedBytes > 0, `memory used ${m.memUsedBytes}`);
    assert.ok(m.pids >= 1);
    assert.ok(m.timestamp instanceof Date);
  });

  it('runs commands with output callbacks, env, cwd, user, stdin and exit codes', async () => {
    const out: string[] = [];
    const err: string[] = [];
    // Commands run as the capsule's unprivileged `user` unless told otherwise (as in E2B).
    assert.equal((await cap.commands.run('id -un')).stdout, 'user\n');
    const r = await cap.commands.run('echo "$GREETING $EXTRA"; pwd; id -un; echo oops >&2', {
      user: 'root',
      envs: { EXTRA: 'and more' },
      cwd: '/tmp',
      onStdout: (d) => out.push(d),
      onStderr: (d) => err.push(d),
    });
    assert.equal(r.exitCode, 0);
    assert.equal(r.stdout, 'hello capsule and more\n/tmp\nroot\n');
    assert.equal(r.stderr, 'oops\n');
    assert.equal(out.join(''), r.stdout);
    assert.equal(err.join(''), 'oops\n');

    const piped = await cap.commands.run('tr a-z A-Z', { stdin: 'from stdin\n' });
    assert.equal(piped.stdout, 'FROM STDIN\n');

    await assert.rejects(cap.commands.run('echo partial; echo bad >&2; exit 3'), (e: unknown) => {
      assert.ok(e instanceof CommandExitError);
      assert.equal(e.exitCode, 3);
      assert.equal(e.stdout, 'partial\n');
      assert.equal(e.stderr, 'bad\n');
      return true;
    });
    await assert.rejects(cap.commands.run('sleep 30', { timeoutMs: 300 }), TimeoutError);
  });

  it('runs a background command: stdin, output, list, connect, disconnect, kill', async () => {
    const seen: string[] = [];
    const h: CommandHandle = await cap.commands.run('while read line; do echo "got $line"; done; echo eof', {
      background: true,
      stdin: true,
      onStdout: (d) => seen.push(d),
    });
    assert.ok(h.pid > 0);
    await h.sendStdin('one\n');
    await waitUntil('first line echoed', () => seen.join('').includes('got one'));
    assert.ok(
      (await cap.commands.list()).some((p) => p.pid === h.pid),
      'listed while running',
    );

    // Disconnect, keep it running, then attach again and finish it through the REST stdin route.
    await h.disconnect();
    const again = await cap.commands.connect(h.pid);
    await cap.commands.sendStdin(h.pid, 'two\n');
    await cap.commands.closeStdin(h.pid);
    const r = await again.wait();
    assert.equal(r.exitCode, 0);
    assert.match(r.stdout, /got two\neof\n$/);

    const sleeper = await cap.commands.run('sleep 300', { background: true });
    assert.equal(await sleeper.kill(), true);
    await assert.rejects(sleeper.wait(), CommandExitError);
    assert.ok(!(await cap.commands.list()).some((p) => p.pid === sleeper.pid), 'killed process is gone');
  });

  it('opens a terminal: output, input, resize, kill', async () => {
    const chunks: Uint8Array[] = [];
    const text = () => Buffer.concat(chunks).toString('utf8');
    const pty = await cap.pty.create({ cols: 100, rows: 30, onData: (d) => chunks.push(d) });
    assert.ok(pty.pid > 0);
    await cap.pty.sendInput(pty.pid, 'stty size; echo "tty=$(tty)"\n');
    await waitUntil(
      'stty size 30 100 and the tty name',
      () => text().includes('30 100') && /tty=\/dev\/pts\//.test(text()),
    );
    await cap.pty.resize(pty, { cols: 120, rows: 40 });
    await pty.sendInput('stty size\n');
    await waitUntil('stty size 40 120', () => text().includes('40 120'));
    await cap.pty.kill(pty.pid);
    const end = await pty.wait();
    assert.equal(typeof end.exitCode, 'number');
  });

  it('reads and writes files as text, bytes, streams and many at once; lists, stats, renames, removes', async () => {
    const w = await cap.files.write('/tmp/sdk/a.txt', 'hello file\n');
    assert.equal(w.bytesWritten, 11);
    assert.equal(await cap.files.read('/tmp/sdk/a.txt'), 'hello file\n');

    const bytes = new Uint8Array(300_000).map((_, i) => (i * 7) % 256);
    await cap.files.write('/tmp/sdk/b.bin', bytes);
    assert.deepEqual(await cap.files.read('/tmp/sdk/b.bin', { format: 'bytes' }), bytes);
    const stream = await cap.files.read('/tmp/sdk/b.bin', { format: 'stream' });
    let total = 0;
    for await (const c of stream as unknown as AsyncIterable<Uint8Array>) total += c.length;
    assert.equal(total, bytes.length);

    const parts = ['streamed ', 'upload\n'];
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        const p = parts.shift();
        if (p === undefined) c.close();
        else c.enqueue(new TextEncoder().encode(p));
      },
    });
    await cap.files.write('/tmp/sdk/c.txt', body);
    assert.equal(await cap.files.read('/tmp/sdk/c.txt'), 'streamed upload\n');

    const many = await cap.files.write([
      { path: '/tmp/sdk/many/1.txt', data: 'one' },
      { path: '/tmp/sdk/many/2.txt', data: new TextEncoder().encode('two') },
    ]);
    assert.equal(many.length, 2);
    assert.equal((await cap.commands.run('cat /tmp/sdk/many/1.txt /tmp/sdk/many/2.txt')).stdout, 'onetwo');

    const names = (await cap.files.list('/tmp/sdk')).map((e) => `${e.name}:${e.type}`).sort();
    assert.deepEqual(names, ['a.txt:file', 'b.bin:file', 'c.txt:file', 'many:dir']);

    assert.equal(await cap.files.makeDir('/tmp/sdk/d/e'), true);
    assert.equal(await cap.files.makeDir('/tmp/sdk/d/e'), false);
    assert.equal(await cap.files.exists('/tmp/sdk/d/e'), true);
    assert.equal(await cap.files.exists('/tmp/sdk/nope'), false);
    const info = await cap.files.getInfo('/tmp/sdk/a.txt');
    assert.equal(info.type, 'file');
    assert.equal(info.size, 11);
    assert.ok(info.modifiedTime instanceof Date);
    await assert.rejects(cap.files.getInfo('/tmp/sdk/nope'), NotFoundError);

    const moved = await cap.files.rename('/tmp/sdk/a.txt', '/tmp/sdk/d/moved.txt');
    assert.equal(moved.path, '/tmp/sdk/d/moved.txt');
    assert.equal(await cap.files.exists('/tmp/sdk/a.txt'), false);
    assert.equal(await cap.files.read('/tmp/sdk/d/moved.txt'), 'hello file\n');

    await cap.files.remove('/tmp/sdk/d');
    assert.equal(await cap.files.exists('/tmp/sdk/d'), false);
    await assert.rejects(cap.files.read('/tmp/sdk/d/moved.txt'), NotFoundError);
  });

  it('watches a directory', async () => {
    await cap.files.makeDir('/tmp/watched');
    const events: FilesystemEvent[] = [];
    const w = await cap.files.watchDir('/tmp/watched', (e) => events.push(e));
    try {
      await cap.files.write('/tmp/watched/new.txt', 'x');
      await cap.files.remove('/tmp/watched/new.txt');
      await waitUntil(
        'create and remove events',
        () =>
          events.some((e) => e.name === 'new.txt' && e.type === 'create') && events.some((e) => e.type === 'remove'),
      );
    } finally {
      await w.stop();
    }
  });

  it('reaches a server in the capsule through getUrl and getHost', async () => {
    await cap.files.write('/tmp/www/index.html', 'served from the capsule\n');
    await cap.commands.run('busybox httpd -p 8080 -h /tmp/www', { background: true });
    const url = cap.getUrl(8080);
    assert.equal(url, `${live.url}/proxy/${cap.capsuleId}/8080/`);
    let body = '';
    await waitUntil('httpd answers through the proxy', async () => {
      const r = await fetch(url).catch(() => undefined);
      body = r?.ok ? await r.text() : '';
      return body !== '';
    });
    assert.equal(body, 'served from the capsule\n');
    const host = cap.getHost(8080);
    assert.equal(host, `8080-${cap.capsuleId}.localhost:${new URL(live.url).port}`);
    // The proxy routes by host name: send the capsule host name as Host to the control plane.
    const viaHost = await new Promise<string>((resolve, reject) => {
      const u = new URL(live.url);
      const hostHeader = host;
      http
        .get(
          { host: u.hostname, port: Number(u.port), path: '/', headers: { host: hostHeader }, agent: false },
          (res) => {
            let s = '';
            res.on('data', (c: Buffer) => (s += c.toString()));
            res.on('end', () => resolve(s));
          },
        )
        .on('error', reject);
    });
    assert.equal(viaHost, 'served from the capsule\n');
  });

  it('creates a private capsule: its ports answer only with its traffic access token; a masked Host', async () => {
    const priv = await Capsule.create({
      ...opts,
      timeoutSec: 300,
      network: { allowPublicTraffic: false, maskRequestHost: 'seen.example:${PORT}' },
    });
    try {
      const token = priv.info.trafficAccessToken;
      assert.ok(token && token.length >= 20, 'the create answer has a token');
      assert.equal(priv.info.maskRequestHost, 'seen.example:${PORT}');
      await priv.files.write(
        '/tmp/www/cgi-bin/host',
        '#!/bin/sh\nprintf "content-type: text/plain\\r\\n\\r\\n%s" "$HTTP_HOST"\n',
      );
      await priv.commands.run('chmod +x /tmp/www/cgi-bin/host && busybox httpd -p 8080 -h /tmp/www');
      const url = `${priv.getUrl(8080)}cgi-bin/host`;
      const refused = await fetch(url);
      assert.equal(refused.status, 403, await refused.text());
      let seen = '';
      await waitUntil('httpd answers with the token', async () => {
        const r = await fetch(url, { headers: { 'e2b-traffic-access-token': token } }).catch(() => undefined);
        seen = r?.status === 200 ? await r.text() : '';
        return seen !== '';
      });
      assert.equal(seen, 'seen.example:8080');
      // envd's port keeps its own token: the SDK still works without the traffic token.
      assert.equal((await priv.commands.run('echo ok')).stdout.trim(), 'ok');
    } finally {
      await priv.kill();
    }
  });

  it('egress policy: create with network, getNetwork, setNetwork replaces it (normalised), bad entries are typed errors', async () => {
    const c = await Capsule.create({
      ...opts,
      template: 'minimal',
      network: { denyOut: ['0.0.0.0/0'], allowOut: ['Example.com', '*.api.example.com', '8.8.8.8'] },
    });
    extra.push(c);
    assert.deepEqual(await c.getNetwork(), {
      allowOut: ['8.8.8.8/32', 'example.com', '*.api.example.com'],
      denyOut: ['0.0.0.0/0'],
      rules: {},
    });
    // Deny all without allowed names: nothing goes out (refused, not hung).
    const out = await c.commands.run('nc -w 2 8.8.4.4 53 </dev/null; echo code=$?');
    assert.match(out.stdout, /code=1/);
    assert.deepEqual(await c.setNetwork({ denyOut: ['8.8.4.4'] }), {
      allowOut: [],
      denyOut: ['8.8.4.4/32'],
      rules: {},
    });
    await assert.rejects(c.updateNetwork({ allowOut: ['10.0.0.1/8'] }), (e: Error) => /host bits set/.test(e.message));
  });

  it('pauses, resumes, and connect() resumes a paused capsule with its files', async () => {
    await cap.files.write('/tmp/keep.txt', 'kept across pause');
    const paused = await cap.pause();
    assert.equal(paused.state, 'paused');
    await assert.rejects(cap.commands.run('true'), (e: Error) => /paused/.test(e.message));
    const resumed = await cap.resume();
    assert.equal(resumed.state, 'running');
    await cap.pause();
    const again = await Capsule.connect(cap.capsuleId, opts);
    assert.equal(again.info.state, 'running');
    assert.equal(await again.files.read('/tmp/keep.txt'), 'kept across pause');
  });

  it('snapshots a capsule, starts a capsule from the snapshot, lists and deletes it', async () => {
    const src = await Capsule.create({ ...opts, timeoutSec: 600 });
    extra.push(src);
    await assert.rejects(src.files.write('/root/denied.txt', 'x'), PermissionDeniedError);
    await src.files.write('/root/from-snapshot.txt', 'snapshot content', { user: 'root' });
    const snap = await Snapshot.create(src.capsuleId, 'sdk-snap', opts);
    assert.equal(snap.name, 'sdk-snap');
    assert.ok((await Snapshot.list(opts)).some((s) => s.name === 'sdk-snap'));
    assert.ok((await Template.list(opts)).some((t) => t.name === 'minimal' && t.builtin));
    const child = await Capsule.create({ ...opts, template: 'sdk-snap', timeoutSec: 600 });
    try {
      assert.equal(await child.files.read('/root/from-snapshot.txt', { user: 'root' }), 'snapshot content');
    } finally {
      await child.destroy();
    }
    await Snapshot.delete('sdk-snap', opts);
    assert.ok(!(await Snapshot.list(opts)).some((s) => s.name === 'sdk-snap'));
    await assert.rejects(Snapshot.delete('sdk-snap', opts), NotFoundError);
  });

  it('creates a volume, mounts it into two capsules, reads and writes it without one, deletes it', async () => {
    const v = await Volume.create('sdk-vol', { ...opts, sizeMb: 32 });
    assert.equal(v.sizeMb, 32);
    assert.ok((await Volume.list(opts)).some((x) => x.id === v.id));
    assert.equal((await Volume.get('sdk-vol', opts)).id, v.id);
    await Volume.writeFile(v.id, '/seed/in.txt', 'from the api', opts);
    const [a, b] = await Promise.all(
      [0, 1].map(() =>
        Capsule.create({ ...opts, template: 'minimal', volumeMounts: [{ name: 'sdk-vol', path: '/data' }] }),
      ),
    );
    extra.push(a as Capsule, b as Capsule);
    assert.deepEqual((a as Capsule).info.volumeMounts, [{ name: 'sdk-vol', path: '/data' }]);
    assert.deepEqual((await Capsule.get((b as Capsule).capsuleId, opts)).volumeMounts, [
      { name: 'sdk-vol', path: '/data' },
    ]);
    const listed = (await Capsule.list(opts)).find((c) => c.capsuleId === (a as Capsule).capsuleId);
    assert.deepEqual(listed?.volumeMounts, [{ name: 'sdk-vol', path: '/data' }]);
    await (a as Capsule).commands.run('echo shared > /data/out.txt');
    assert.equal((await (b as Capsule).commands.run('cat /data/out.txt')).stdout, 'shared\n');
    assert.equal(new TextDecoder().decode(await Volume.readFile('sdk-vol', '/out.txt', opts)), 'shared\n');
    const names = (await Volume.listEntries('sdk-vol', '/', { ...opts, depth: 2 })).map((e) => e.path).sort();
    assert.deepEqual(names, ['/out.txt', '/seed', '/seed/in.txt']);
    await assert.rejects(
      Volume.delete(v.id, opts),
      (e: Error) => e.name === 'ConflictError' || /409|mounted/.test(e.message),
    );
    await Promise.all([(a as Capsule).destroy(), (b as Capsule).destroy()]);
    await Volume.remove('sdk-vol', '/seed', opts);
    await Volume.delete('sdk-vol', opts);
    await assert.rejects(Volume.get(v.id, opts), NotFoundError);
  });

  it('raises typed errors carrying the server message', async () => {
    await assert.rejects(Capsule.list({ ...opts, apiKey: 'wrn_wrongwrongwrongwrongwrongwrongwr' }), (e: unknown) => {
      assert.ok(e instanceof AuthenticationError);
      assert.equal(e.status, 401);
      return true;
    });
    await assert.rejects(Capsule.get('cl-doesnotexist', opts), (e: unknown) => {
      assert.ok(e instanceof NotFoundError);
      assert.match(e.message, /cl-doesnotexist/);
      return true;
    });
    await assert.rejects(Capsule.create({ ...opts, vcpus: 999 }), (e: unknown) => {
      assert.ok(e instanceof InvalidArgumentError);
      assert.match(e.message, /vcpus/);
      return true;
    });
    await assert.rejects(Capsule.connect('cl-doesnotexist', opts), NotFoundError);
    const gone = await Capsule.create({ ...opts, timeoutSec: 600 });
    await gone.destroy();
    await assert.rejects(gone.commands.run('true'), CapsuleGoneError);
    await assert.rejects(gone.destroy(), CapsuleGoneError);
  });
});
