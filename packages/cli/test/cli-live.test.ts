// The `wrenn` user commands end to end: `node packages/cli/bin/wrenn.js ...` spawned against a
// live `wrenn up` (real namespace capsules), `shell` driven through tmux, and bad input (wrong
// key, unknown capsule) answered with a message, exit code 1 and no stack trace.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Live, startLive } from '@wrenn/control-plane/testing';
import { CLI_BIN as BIN, type CliRun, runCli, STACK_LINE as STACK } from './run-cli.js';

describe('wrenn CLI against wrenn up', () => {
  let live: Live;
  let home: string;
  let env: Record<string, string>;
  const capsules: string[] = [];

  /** Runs the CLI with the live system's key and URL (unless overridden) and a private config dir. */
  function wrenn(
    args: string[],
    o: { env?: Record<string, string | undefined>; input?: string } = {},
  ): Promise<CliRun> {
    const merged: Record<string, string> = { ...env };
    for (const [k, v] of Object.entries(o.env ?? {})) {
      if (v === undefined) delete merged[k];
      else merged[k] = v;
    }
    return runCli(args, merged, o.input ?? '');
  }

  const ok = async (args: string[], o?: Parameters<typeof wrenn>[1]) => {
    const r = await wrenn(args, o);
    assert.equal(r.code, 0, `wrenn ${args.join(' ')} failed: ${r.stderr}`);
    return r;
  };

  before(async () => {
    live = await startLive(7, 'cli');
    home = mkdtempSync(join(tmpdir(), 'wrenn-cli-home-'));
    env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: home,
      XDG_CONFIG_HOME: join(home, '.config'),
      WRENN_API_KEY: live.apiKey,
      WRENN_BASE_URL: live.url,
    };
  });
  after(async () => {
    for (const id of capsules) await wrenn(['capsule', 'rm', id]).catch(() => undefined);
    rmSync(home, { recursive: true, force: true });
    await live?.close();
  });

  it('creates, lists, shows, pings, pauses, resumes and destroys capsules', async () => {
    const created = await ok(['capsule', 'create', '--timeout', '600', '-m', 'suite=cli', '-e', 'WHO=cli', '--json']);
    const c = JSON.parse(created.stdout) as { id: string; state: string; metadata: Record<string, string> };
    capsules.push(c.id);
    assert.equal(c.state, 'running');
    assert.deepEqual(c.metadata, { suite: 'cli' });

    const plain = await ok(['capsule', 'create', '--timeout', '600']);
    const id2 = plain.stdout.trim();
    capsules.push(id2);
    assert.match(id2, /^cl-[0-9a-z]+$/);

    // The timeout action and auto-resume reach the capsule; a wrong action is refused before any request.
    const lifecycle = JSON.parse(
      (await ok(['capsule', 'create', '--timeout', '600', '--on-timeout', 'pause', '--auto-resume', '--json'])).stdout,
    ) as { id: string; timeout_action: string; auto_resume: boolean };
    capsules.push(lifecycle.id);
    assert.deepEqual([lifecycle.timeout_action, lifecycle.auto_resume], ['pause', true]);
    // A private capsule: its token is in the JSON (and the proxy demands it); a masked Host.
    const priv = JSON.parse(
      (await ok(['capsule', 'create', '--timeout', '600', '--private', '--mask-host', 'x.example:${PORT}', '--json']))
        .stdout,
    ) as { id: string; traffic_access_token?: string; mask_request_host?: string };
    capsules.push(priv.id);
    assert.ok((priv.traffic_access_token ?? '').length >= 20, JSON.stringify(priv));
    assert.equal(priv.mask_request_host, 'x.example:${PORT}');
    const badAction = await wrenn(['capsule', 'create', '--on-timeout', 'sleep']);
    assert.equal(badAction.code, 1);
    assert.match(badAction.stderr, /--on-timeout must be one of kill, pause, hibernate, got 'sleep'/);

    const listed = JSON.parse((await ok(['capsule', 'ls', '--json', '-m', 'suite=cli'])).stdout) as { id: string }[];
    assert.deepEqual(
      listed.map((x) => x.id),
      [c.id],
    );
    const table = (await ok(['capsule', 'ls'])).stdout;
    assert.match(table, /^ID\s+STATE\s+TEMPLATE/m);
    assert.ok(table.includes(c.id) && table.includes(id2));

    assert.match((await ok(['capsule', 'info', c.id])).stdout, /state:\s+running/);
    // --json is the API's own capsule JSON: every field, spelled as GET /v1/capsules/{id} spells it.
    const shown = JSON.parse((await ok(['capsule', 'info', c.id, '--json'])).stdout) as Record<string, unknown>;
    const fromApi = (await (
      await fetch(`${live.url}/v1/capsules/${c.id}`, { headers: { 'X-API-Key': live.apiKey } })
    ).json()) as Record<string, unknown>;
    assert.equal(shown.id, c.id);
    assert.deepEqual(shown, fromApi);
    assert.match((await ok(['capsule', 'ping', c.id])).stdout, /running; expires in/);

    await ok(['capsule', 'pause', id2]);
    assert.equal(JSON.parse((await ok(['capsule', 'info', id2, '--json'])).stdout).state, 'paused');
    const blocked = await wrenn(['exec', id2, '--', 'true']);
    assert.equal(blocked.code, 1);
    assert.match(blocked.stderr, /paused/);
    assert.match(blocked.stderr, /wrenn capsule resume/);
    await ok(['capsule', 'resume', id2]);
    assert.equal(JSON.parse((await ok(['capsule', 'info', id2, '--json'])).stdout).state, 'running');

    await ok(['capsule', 'rm', id2]);
    capsules.splice(capsules.indexOf(id2), 1);
    const gone = await wrenn(['capsule', 'info', id2, '--json']);
    assert.equal(JSON.parse(gone.stdout || '{}').state ?? 'stopped', 'stopped');
  });

  it('exec streams output, forwards stdin and env, and exits with the command code', async () => {
    const id = capsules[0]!;
    const r = await ok(['exec', id, '--', 'echo', 'hello world', '$WHO']);
    assert.equal(r.stdout, 'hello world $WHO\n', 'words are quoted for the shell');
    assert.equal((await ok(['exec', id, '--', 'echo $WHO-$EXTRA; echo err >&2'], {})).stdout, 'cli-\n');
    assert.equal(
      (await ok(['exec', '-e', 'EXTRA=x', '--cwd', '/tmp', id, '--', 'echo $EXTRA; pwd'])).stdout,
      'x\n/tmp\n',
    );
    const piped = await ok(['exec', id, '--', 'tr', 'a-z', 'A-Z'], { input: 'piped in\n' });
    assert.equal(piped.stdout, 'PIPED IN\n');
    const failing = await wrenn(['exec', id, '--', 'echo out; echo bad >&2; exit 7']);
    assert.equal(failing.code, 7);
    assert.equal(failing.stdout, 'out\n');
    assert.equal(failing.stderr, 'bad\n');
  });

  it('copies files in and out and lists directories', async () => {
    const id = capsules[0]!;
    const local = join(home, 'up.bin');
    const data = Buffer.alloc(200_000, 'abc');
    writeFileSync(local, data);
    await ok(['files', 'put', id, local, '/tmp/cli/']);
    const back = join(home, 'down.bin');
    await ok(['files', 'get', id, '/tmp/cli/up.bin', back]);
    assert.deepEqual(readFileSync(back), data);
    await ok(['exec', id, '--', 'echo small > /tmp/cli/s.txt']);
    assert.equal((await ok(['files', 'get', id, '/tmp/cli/s.txt'])).stdout, 'small\n');
    const entries = JSON.parse((await ok(['files', 'ls', id, '/tmp/cli', '--json'])).stdout) as {
      name: string;
      size: number;
    }[];
    assert.deepEqual(entries.map((e) => `${e.name}:${e.size}`).sort(), ['s.txt:6', 'up.bin:200000']);
    assert.match(
      (await ok(['files', 'ls', id, '/tmp/cli'])).stdout,
      /^TYPE\s+SIZE\s+MODIFIED\s+NAME$[\s\S]*^file\s+195 KiB\s+\S+ \S+\s+up\.bin$/m,
    );
    const missing = await wrenn(['files', 'get', id, '/tmp/cli/none']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /none/);
    const noLocal = await wrenn(['files', 'put', id, join(home, 'absent'), '/tmp/x']);
    assert.equal(noLocal.code, 1);
    assert.match(noLocal.stderr, /cannot read .*absent: no such file/);
  });

  it('snapshots and templates: create, list (--json), delete', async () => {
    const id = capsules[0]!;
    assert.equal((await ok(['snapshot', 'create', id, 'cli-snap'])).stdout.trim(), 'cli-snap');
    const snaps = JSON.parse((await ok(['snapshot', 'ls', '--json'])).stdout) as { name: string }[];
    assert.ok(snaps.some((s) => s.name === 'cli-snap'));
    const templates = JSON.parse((await ok(['template', 'ls', '--json'])).stdout) as {
      name: string;
      builtin: boolean;
    }[];
    assert.ok(templates.some((t) => t.name === 'minimal' && t.builtin));
    assert.match((await ok(['template', 'ls'])).stdout, /^NAME\s+KIND/m);
    await ok(['snapshot', 'rm', 'cli-snap']);
    const again = await wrenn(['snapshot', 'rm', 'cli-snap']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /cli-snap/);
    assert.doesNotMatch(again.stderr, STACK);
  });

  it('template build: a Dockerfile with a context file, ENV and WORKDIR; a broken RUN and a malformed line fail', async () => {
    const ctx = join(home, 'ctx');
    mkdirSync(join(ctx, 'pkg'), { recursive: true });
    writeFileSync(join(ctx, 'pkg', 'data.txt'), 'from the context\n');
    writeFileSync(
      join(ctx, 'Dockerfile'),
      'FROM minimal\nENV GREETING=built\nWORKDIR /opt/app\nCOPY pkg/data.txt /opt/app/data.txt\nRUN echo ran > /opt/app/ran.txt\n',
    );
    writeFileSync(join(ctx, 'Dockerfile.bad'), 'FROM minimal\nRUN echo broken-output; exit 4\n');
    writeFileSync(join(ctx, 'Dockerfile.mal'), 'FROM minimal\nFROBNICATE x\n');
    try {
      const built = await ok(['template', 'build', '-f', join(ctx, 'Dockerfile'), '-c', ctx, '--name', 'cli-tpl']);
      assert.equal(built.stdout.trim(), 'cli-tpl');
      assert.match(built.stderr, /Step 3\/4 : COPY pkg\/data.txt/);
      const id = (await ok(['capsule', 'create', '--template', 'cli-tpl', '--timeout', '600'])).stdout.trim();
      try {
        assert.equal(
          (await ok(['exec', id, '--', 'echo $GREETING; pwd; cat data.txt ran.txt'])).stdout,
          'built\n/opt/app\nfrom the context\nran\n',
        );
      } finally {
        await ok(['capsule', 'rm', id]);
      }
      const bad = await wrenn(['template', 'build', '-f', join(ctx, 'Dockerfile.bad'), '-c', ctx, '--name', 'cli-bad']);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /broken-output/);
      assert.match(bad.stderr, /wrenn: template build failed: .*line 2.*exit code 4/);
      assert.doesNotMatch(bad.stderr, STACK);
      const mal = await wrenn(['template', 'build', '-f', join(ctx, 'Dockerfile.mal'), '-c', ctx, '--name', 'cli-mal']);
      assert.equal(mal.code, 1);
      assert.match(mal.stderr, /line 2: unknown instruction 'FROBNICATE'/);
      assert.doesNotMatch(mal.stderr, STACK);
      const missing = await wrenn(['template', 'build', '-f', join(ctx, 'nope'), '--name', 'x']);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /cannot read the Dockerfile/);
    } finally {
      // Builds land in the shared template cache: remove what this test made.
      for (const name of ['cli-tpl', 'cli-bad', 'cli-mal']) await wrenn(['template', 'rm', name]);
    }
  });

  it('template build --build-arg: a two-stage Dockerfile, its steps n/N, then every layer from the cache', async () => {
    const ctx = join(home, 'ctx-stages');
    mkdirSync(ctx, { recursive: true });
    writeFileSync(
      join(ctx, 'Dockerfile'),
      'ARG WHO=nobody\nFROM minimal AS make\nARG WHO\nRUN echo "made for $WHO" > /m.txt\n' +
        'FROM minimal AS unused\nRUN exit 1\nFROM minimal\nCOPY --from=make /m.txt /m.txt\n',
    );
    const args = ['template', 'build', '-c', ctx, '-f', join(ctx, 'Dockerfile'), '--name', 'cli-stages'];
    try {
      const built = await ok([...args, '--build-arg', 'WHO=cli', '--build-arg', 'UNUSED=1']);
      assert.match(built.stderr, /Skipping stage 'unused'/);
      assert.match(built.stderr, /Warning: build argument UNUSED was not used/);
      assert.match(built.stderr, /Step 2\/3 : RUN echo "made for \$WHO"/);
      assert.match(built.stderr, /built cli-stages: 3 steps, 0 from the layer cache/);
      const again = await ok([...args, '--build-arg', 'WHO=cli']);
      assert.match(again.stderr, /Step 2\/3 : RUN echo[^\n]*\n ---> cached/);
      assert.match(again.stderr, /built cli-stages: 3 steps, 2 from the layer cache/);
      const id = (await ok(['capsule', 'create', '--template', 'cli-stages'])).stdout.trim();
      try {
        assert.equal((await ok(['exec', id, '--', 'cat /m.txt'])).stdout, 'made for cli\n');
      } finally {
        await ok(['capsule', 'rm', id]);
      }
    } finally {
      await wrenn(['template', 'rm', 'cli-stages']);
    }
  });

  it('login stores the key and URL (mode 0600) and later commands use them', async () => {
    const noEnv = { WRENN_API_KEY: undefined, WRENN_BASE_URL: undefined };
    const before = await wrenn(['capsule', 'ls'], { env: noEnv });
    assert.equal(before.code, 1);
    assert.match(before.stderr, /no API key: run `wrenn login`/);
    const bad = await wrenn(['login', '--api-key', 'wrn_wrongwrongwrongwrongwrongwrongwr', '--base-url', live.url], {
      env: noEnv,
    });
    assert.equal(bad.code, 1);
    await ok(['login', '--api-key', live.apiKey, '--base-url', live.url], { env: noEnv });
    const file = join(home, '.config', 'wrenn', 'config.json');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { apiKey: live.apiKey, baseUrl: live.url });
    const listed = await ok(['capsule', 'ls', '--json'], { env: noEnv });
    assert.ok((JSON.parse(listed.stdout) as { id: string }[]).some((c) => c.id === capsules[0]));
    rmSync(file);
  });

  it('capsule create --allow-out/--deny-out, capsule network shows, replaces and clears the policy', async () => {
    const c = JSON.parse(
      (await ok(['capsule', 'create', '--deny-out', '0.0.0.0/0', '--allow-out', 'example.com', '--json'])).stdout,
    ) as { id: string };
    capsules.push(c.id);
    assert.deepEqual(JSON.parse((await ok(['capsule', 'network', c.id, '--json'])).stdout), {
      allow_out: ['example.com'],
      deny_out: ['0.0.0.0/0'],
      rule_domains: [],
    });
    assert.match((await ok(['capsule', 'network', c.id, '--deny-out', '8.8.8.8'])).stdout, /deny out: +8\.8\.8\.8\/32/);
    assert.match((await ok(['capsule', 'network', c.id, '--clear'])).stdout, /allow out: +-/);
    const bad = await wrenn(['capsule', 'network', c.id, '--deny-out', 'example.com']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /takes no domain names/);
    assert.doesNotMatch(bad.stderr, STACK);
    await ok(['capsule', 'rm', c.id]);
  });

  it('volume create, ls, capsule create --volume, rm (refused while mounted)', async () => {
    const id = (await ok(['volume', 'create', 'cli-vol', '--size', '32'])).stdout.trim();
    assert.match(id, /^vol-[0-9a-z]+$/);
    const listed = JSON.parse((await ok(['volume', 'ls', '--json'])).stdout) as { id: string; size_mb: number }[];
    assert.equal(listed.find((v) => v.id === id)?.size_mb, 32);
    const c = JSON.parse((await ok(['capsule', 'create', '--volume', 'cli-vol:/mnt/v', '--json'])).stdout) as {
      id: string;
    };
    capsules.push(c.id);
    await ok(['exec', c.id, '--', 'sh', '-c', 'echo kept > /mnt/v/f']);
    const busy = await wrenn(['volume', 'rm', 'cli-vol']);
    assert.equal(busy.code, 1);
    assert.match(busy.stderr, /mounted by/);
    assert.doesNotMatch(busy.stderr, STACK);
    await ok(['capsule', 'rm', c.id]);
    const again = JSON.parse((await ok(['capsule', 'create', '--volume', 'cli-vol:/srv', '--json'])).stdout) as {
      id: string;
    };
    capsules.push(again.id);
    assert.equal((await ok(['exec', again.id, '--', 'cat', '/srv/f'])).stdout, 'kept\n');
    await ok(['capsule', 'rm', again.id]);
    await ok(['volume', 'rm', 'cli-vol']);
    assert.equal(JSON.parse((await ok(['volume', 'ls', '--json'])).stdout).length, 0);
    const bad = await wrenn(['capsule', 'create', '--volume', 'cli-vol:/proc/x']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /\/proc/);
    assert.doesNotMatch(bad.stderr, STACK);
  });

  it('capsule run-code: streams output, prints results, reads code from stdin, fails on an error', async () => {
    const id = (await ok(['capsule', 'create', '--template', 'code-interpreter-v1', '--timeout', '300'])).stdout.trim();
    capsules.push(id);
    const first = await ok([
      'capsule',
      'run-code',
      id,
      'import sys\nprint("out")\nprint("err", file=sys.stderr)\nx = 20\nx + 1',
    ]);
    assert.equal(first.stdout, 'out\n21\n');
    assert.equal(first.stderr, 'err\n');
    // State is kept; `-` reads the code from stdin.
    assert.equal((await ok(['capsule', 'run-code', id, '-'], { input: 'x * 2' })).stdout, '40\n');
    assert.equal((await ok(['capsule', 'run-code', id, '--language', 'js', '[1, 2].length'])).stdout, '2\n');
    const json = JSON.parse((await ok(['capsule', 'run-code', id, '--json', 'print(3)'])).stdout);
    assert.deepEqual(json.stdout, ['3\n']);
    const bad = await wrenn(['capsule', 'run-code', id, '1/0']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr.replace(/\x1b\[[0-9;]*m/g, ''), /ZeroDivisionError/);
    assert.doesNotMatch(bad.stderr, STACK);
    const lang = await wrenn(['capsule', 'run-code', id, '--language', 'cobol', '1']);
    assert.equal(lang.code, 1);
    assert.match(lang.stderr, /not available/);
    assert.doesNotMatch(lang.stderr, STACK);
  });

  it('bad input: a wrong key and an unknown capsule say what is wrong, exit 1, no stack trace', async () => {
    const wrongKey = await wrenn(['capsule', 'ls'], { env: { WRENN_API_KEY: 'wrn_wrongwrongwrongwrongwrongwrongwr' } });
    assert.equal(wrongKey.code, 1);
    assert.match(wrongKey.stderr, /API key/);
    assert.match(wrongKey.stderr, /wrenn login/);
    assert.doesNotMatch(wrongKey.stderr, STACK);

    for (const args of [
      ['capsule', 'info', 'cl-nosuchcapsule'],
      ['exec', 'cl-nosuchcapsule', '--', 'true'],
      ['capsule', 'rm', 'cl-nosuchcapsule'],
    ]) {
      const r = await wrenn(args);
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, /cl-nosuchcapsule/);
      assert.match(r.stderr, /wrenn capsule ls/);
      assert.doesNotMatch(r.stderr, STACK);
    }
    const debug = await wrenn(['--debug', 'capsule', 'info', 'cl-nosuchcapsule']);
    assert.equal(debug.code, 1);
    assert.match(debug.stderr, STACK, '--debug shows the stack trace');

    const unreachable = await wrenn(['capsule', 'ls'], { env: { WRENN_BASE_URL: 'http://127.0.0.1:9' } });
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stderr, /cannot reach the Wrenn API at http:\/\/127\.0\.0\.1:9/);
    const badOpt = await wrenn(['capsule', 'create', '--vcpus', 'many']);
    assert.equal(badOpt.code, 1);
    assert.match(badOpt.stderr, /--vcpus must be a whole number/);
  });

  it('shell: an interactive terminal driven through tmux (input, resize, Ctrl-D)', async () => {
    const id = capsules[0]!;
    const sock = `wrenn-cli-test-${process.pid}`;
    const tmux = (...args: string[]) => execFileSync('tmux', ['-L', sock, ...args], { encoding: 'utf8' });
    const pane = () => tmux('capture-pane', '-p', '-t', 'cli');
    const waitPane = async (what: RegExp) => {
      const end = Date.now() + 20_000;
      for (;;) {
        const text = pane();
        if (what.test(text)) return text;
        if (Date.now() > end) throw new Error(`tmux pane never showed ${what}; it shows:\n${text}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const envArgs = Object.entries(env).map(([k, v]) => q(`${k}=${v}`));
    const line = `env ${envArgs.join(' ')} ${q(process.execPath)} ${q(BIN)} shell ${id}; echo SHELL-EXIT=$?; sleep 60`;
    tmux('-f', '/dev/null', 'new-session', '-d', '-s', 'cli', '-x', '100', '-y', '30', line);
    try {
      await waitPane(/built-in shell[\s\S]*\$/);
      tmux('send-keys', '-t', 'cli', 'echo hi-$((6*7)); stty size', 'Enter');
      const first = await waitPane(/^hi-42$/m);
      const [rows, cols] = /^(\d+) (\d+)$/m.exec(first)!.slice(1).map(Number);
      assert.equal(cols, 100);
      tmux('resize-window', '-t', 'cli', '-x', '120', '-y', '40');
      await new Promise((r) => setTimeout(r, 300));
      tmux('send-keys', '-t', 'cli', 'clear; stty size', 'Enter');
      await waitPane(new RegExp(`^${rows! + 10} 120$`, 'm'));
      tmux('send-keys', '-t', 'cli', 'C-d');
      await waitPane(/SHELL-EXIT=0/);
    } finally {
      try {
        tmux('kill-server');
      } catch {
        // already gone
      }
    }
  });
});
