// process.Process end to end with real processes, through Connect JSON over HTTP/1.1 and binary
// over h2c: output and exit codes, env/cwd/user, background processes shared by several clients,
// stdin, StreamInput, PTYs, disconnects, timeouts and the error codes for bad requests.

import assert from 'node:assert/strict';
import { chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { type Client, Code, ConnectError } from '@connectrpc/connect';
import type { StartRequestSchema, StreamInputRequestSchema } from '@wrenn/protocol/gen/envd/process_pb';
import { Process, type ProcessEvent, Signal } from '@wrenn/protocol/gen/envd/process_pb';
import { startTestEnvd, type TestEnvd, userHeader } from './helpers.js';

type ProcessClient = Client<typeof Process>;
type StartInit = MessageInitShape<typeof StartRequestSchema>;
type EndEvent = Extract<ProcessEvent['event'], { case: 'end' }>['value'];

interface Collected {
  pid: number;
  stdout: string;
  stderr: string;
  pty: string;
  end: EndEvent | undefined;
  keepalives: number;
}

/** Drains a Start/Connect stream into text; the first event must be start. */
async function collect(
  stream: AsyncIterable<{ event?: ProcessEvent }>,
  onPid?: (pid: number) => void,
): Promise<Collected> {
  const out: Collected = { pid: 0, stdout: '', stderr: '', pty: '', end: undefined, keepalives: 0 };
  let first = true;
  for await (const res of stream) {
    const e = res.event?.event;
    if (first) {
      assert.equal(e?.case, 'start', 'the first event must be start');
      first = false;
    }
    switch (e?.case) {
      case 'start':
        out.pid = e.value.pid;
        onPid?.(e.value.pid);
        break;
      case 'data': {
        const o = e.value.output;
        if (o.case) out[o.case] += Buffer.from(o.value).toString();
        break;
      }
      case 'end':
        out.end = e.value;
        break;
      case 'keepalive':
        out.keepalives++;
        break;
    }
  }
  return out;
}

// Not a login shell (`-l`): the host's login profile may be slow, and killing a shell in the middle
// of it can leave the profile's lock files behind. The e2b suite covers the SDK's `-l` form.
function bash(script: string, extra: Omit<StartInit, 'process'> & { process?: StartInit['process'] } = {}): StartInit {
  return { process: { cmd: '/bin/bash', args: ['-c', script] }, stdin: false, ...extra } as StartInit;
}

/** A started process whose events keep being collected in the background. */
interface Running {
  pid: number;
  done: Promise<Collected>;
  /** Resolves once the collected output contains `text`. */
  waitFor(text: string): Promise<void>;
  text(): string;
}

function startRunning(
  client: ProcessClient,
  req: StartInit,
  opts: { signal?: AbortSignal; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<Running> {
  return attach(client.start(req, opts));
}

function attach(stream: AsyncIterable<{ event?: ProcessEvent }>): Promise<Running> {
  let output = '';
  const waiters: { text: string; resolve: () => void }[] = [];
  const feed = (chunk: string) => {
    output += chunk;
    for (const w of [...waiters]) if (output.includes(w.text)) w.resolve();
  };
  return new Promise((resolvePid, rejectPid) => {
    const tap = (async function* () {
      for await (const res of stream) {
        const e = res.event?.event;
        if (e?.case === 'data') feed(Buffer.from(e.value.output.value as Uint8Array).toString());
        yield res;
      }
    })();
    const done = collect(tap, (pid) =>
      resolvePid({
        pid,
        done,
        text: () => output,
        waitFor: (text) =>
          output.includes(text)
            ? Promise.resolve()
            : new Promise<void>((resolve, reject) => {
                waiters.push({ text, resolve });
                done.then(
                  () =>
                    output.includes(text)
                      ? resolve()
                      : reject(
                          new Error(
                            `process ended without printing ${JSON.stringify(text)}; output: ${JSON.stringify(output)}`,
                          ),
                        ),
                  reject,
                );
              }),
      }),
    );
    done.catch(rejectPid);
  });
}

const byPid = (pid: number) => ({ selector: { case: 'pid' as const, value: pid } });
const byTag = (tag: string) => ({ selector: { case: 'tag' as const, value: tag } });

async function expectCode(promise: Promise<unknown>, code: Code, messagePart?: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof ConnectError, `expected a ConnectError, got ${String(err)}`);
    assert.equal(err.code, code, `expected ${Code[code]}, got ${Code[err.code]}: ${err.message}`);
    if (messagePart) assert.match(err.rawMessage, new RegExp(messagePart));
    return true;
  });
}

/** State of a pid: 'gone', 'zombie' (dead, not yet reaped by its new parent) or 'alive'. */
function pidState(pid: number): 'gone' | 'zombie' | 'alive' {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z') ? 'zombie' : 'alive';
  } catch {
    return 'gone';
  }
}

async function eventually(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) assert.fail(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const variant of [
  { name: 'JSON over HTTP/1.1', http2: false, binary: false },
  { name: 'binary over h2c', http2: true, binary: true },
]) {
  describe(`process.Process (${variant.name})`, () => {
    let envd: TestEnvd;
    let client: ProcessClient;
    const tmpDirs: string[] = [];

    before(async () => {
      envd = await startTestEnvd({ portForwarding: false, http2: variant.http2, binary: variant.binary });
      client = envd.process;
    });
    after(async () => {
      // Every test kills what it starts; this catches what a failing test left running.
      const left = (await client.list({})).processes;
      for (const p of left) await client.sendSignal({ process: byPid(p.pid), signal: Signal.SIGKILL }).catch(() => {});
      await envd.close();
      for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
      assert.deepEqual(
        left.map((p) => p.pid),
        [],
        'processes were left running by a test',
      );
    });

    test('stdout, stderr and exit codes as E2B reports them', async () => {
      const fail = await collect(client.start(bash('echo out; echo err >&2; exit 3')));
      assert.ok(fail.pid > 0);
      assert.equal(fail.stdout, 'out\n');
      assert.equal(fail.stderr, 'err\n');
      assert.equal(fail.end?.exitCode, 3);
      assert.equal(fail.end?.exited, true);
      assert.equal(fail.end?.status, 'exit status 3');
      assert.equal(fail.end?.error, 'exit status 3');

      const ok = await collect(client.start(bash('printf "a\\nb"')));
      assert.equal(ok.stdout, 'a\nb');
      assert.equal(ok.end?.exitCode, 0);
      assert.equal(ok.end?.status, 'exit status 0');
      assert.equal(ok.end?.error, undefined);

      const missing = await collect(client.start(bash('no-such-command-xyz')));
      assert.equal(missing.end?.exitCode, 127);
      assert.match(missing.stderr, /no-such-command-xyz/);
    });

    test('a background job holding the output pipes does not keep the command from ending', async () => {
      // The job inherits stdout/stderr; E2B's envd would wait for it. Ours ends the command shortly after the shell exits.
      const r = await collect(client.start(bash('sleep 20 & echo "job=$!"')));
      const job = Number(/job=(\d+)/.exec(r.stdout)?.[1]);
      try {
        assert.equal(r.end?.exitCode, 0);
        assert.equal(pidState(job), 'alive', 'the job itself keeps running');
      } finally {
        if (job > 0) process.kill(job, 'SIGKILL');
      }
    });

    test('large output arrives complete and in order', async () => {
      const r = await collect(client.start(bash('seq 1 200000')));
      const lines = r.stdout.trimEnd().split('\n');
      assert.equal(lines.length, 200000);
      assert.equal(lines[0], '1');
      assert.equal(lines[199999], '200000');
      assert.equal(r.end?.exitCode, 0);
    });

    test('environment: base variables, /init variables, request variables (request wins)', async () => {
      envd.server.state.envVars.WRENN_TEST_BOTH = 'init-loses';
      envd.server.state.envVars.WRENN_TEST_INIT = 'from-init';
      try {
        const r = await collect(
          client.start({
            process: { cmd: '/usr/bin/env', args: [], envs: { FOO: 'bar baz', WRENN_TEST_BOTH: 'request-wins' } },
          }),
        );
        const env = new Map(
          r.stdout
            .trimEnd()
            .split('\n')
            .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const),
        );
        assert.equal(env.get('FOO'), 'bar baz');
        assert.equal(env.get('WRENN_TEST_INIT'), 'from-init');
        assert.equal(env.get('WRENN_TEST_BOTH'), 'request-wins');
        assert.equal(env.get('HOME'), '/root');
        assert.equal(env.get('USER'), 'root');
        assert.equal(env.get('LOGNAME'), 'root');
        assert.ok(env.get('PATH')?.includes('/usr/bin'), 'PATH is set');
        assert.ok(env.get('SHELL'), 'SHELL is set');
        assert.equal(env.get('TERM'), undefined, 'TERM only for PTYs');
        assert.equal(env.get('WRENN_ENVD_ACCESS_TOKEN'), undefined, "envd's own environment does not leak");
      } finally {
        delete envd.server.state.envVars.WRENN_TEST_INIT;
        delete envd.server.state.envVars.WRENN_TEST_BOTH;
      }
    });

    test('cwd: explicit, ~ expansion, relative to home, default home', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'wrenn-proc-'));
      tmpDirs.push(dir);
      const explicit = await collect(
        client.start(bash('pwd', { process: { cmd: '/bin/bash', args: ['-c', 'pwd'], cwd: dir } })),
      );
      assert.equal(explicit.stdout, `${dir}\n`);
      const home = await collect(client.start({ process: { cmd: '/bin/pwd', args: [] } }));
      assert.equal(home.stdout, '/root\n');
      const tilde = await collect(client.start({ process: { cmd: '/bin/pwd', args: [], cwd: '~' } }));
      assert.equal(tilde.stdout, '/root\n');
      const relative = await collect(client.start({ process: { cmd: '/bin/pwd', args: [], cwd: '../tmp' } }));
      assert.equal(relative.stdout, '/tmp\n');
    });

    test('user from the Basic authorization header: nobody, and the default user', async () => {
      const nobody = await collect(
        client.start(bash('id -u; id -g; echo $HOME $USER; pwd'), { headers: userHeader('nobody') }),
      );
      // nobody's home (/nonexistent) does not exist: a default cwd falls back to "/".
      assert.equal(nobody.stdout, '65534\n65534\n/nonexistent nobody\n/\n');
      assert.equal(nobody.end?.exitCode, 0);

      const root = await collect(client.start(bash('id -u')));
      assert.equal(root.stdout, '0\n');

      await expectCode(
        collect(client.start(bash('id -u'), { headers: userHeader('no-such-user-xyz') })),
        Code.InvalidArgument,
        'no-such-user-xyz',
      );
    });

    test('background process: connect by tag from a second client, List, fan-out, kill the whole group', async () => {
      const tag = `bg-${variant.http2 ? 'h2' : 'h1'}`;
      const script = 'sleep 300 & echo "child=$!"; while read line; do echo "got $line"; done';
      const first = await startRunning(client, bash(script, { tag, stdin: true }));
      await first.waitFor('child=');
      const sleepPid = Number(/child=(\d+)/.exec(first.text())?.[1]);
      assert.ok(sleepPid > 0);

      // A second client (own connection) attaches by tag.
      const other = await startTestEnvdClient(envd, variant);
      const second = await attach(other.connect({ process: byTag(tag) }));
      assert.equal(second.pid, first.pid);

      const listed = (await client.list({})).processes.find((p) => p.pid === first.pid);
      assert.ok(listed, 'List shows the running process');
      assert.equal(listed.tag, tag);
      assert.equal(listed.config?.cmd, '/bin/bash');
      assert.deepEqual(listed.config?.args, ['-c', script]);

      // Output after attaching reaches both clients.
      await client.sendInput({
        process: byPid(first.pid),
        input: { input: { case: 'stdin', value: Buffer.from('ping\n') } },
      });
      await Promise.all([first.waitFor('got ping'), second.waitFor('got ping')]);

      await other.sendSignal({ process: byTag(tag), signal: Signal.SIGKILL });
      const [a, b] = await Promise.all([first.done, second.done]);
      for (const r of [a, b]) {
        assert.equal(r.end?.exitCode, -1);
        assert.equal(r.end?.exited, false);
        assert.equal(r.end?.status, 'signal: killed');
      }
      await eventually(() => pidState(sleepPid) !== 'alive', 'the shell\'s child "sleep" to die with its group');
      assert.equal(
        (await client.list({})).processes.find((p) => p.pid === first.pid),
        undefined,
        'finished processes leave the table',
      );

      // Reconnecting right after the exit still tells how it ended.
      const late = await collect(client.connect({ process: byPid(first.pid) }));
      assert.equal(late.pid, first.pid);
      assert.equal(late.end?.status, 'signal: killed');
    });

    test('SIGTERM ends a process with "signal: terminated"', async () => {
      const r = await startRunning(client, bash('echo ready; sleep 300'));
      await r.waitFor('ready');
      await client.sendSignal({ process: byPid(r.pid), signal: Signal.SIGTERM });
      const done = await r.done;
      assert.equal(done.end?.status, 'signal: terminated');
      assert.equal(done.end?.error, 'signal: terminated');
    });

    test('stdin: SendInput then CloseStdin gives EOF; disabled stdin is refused', async () => {
      const cat = await startRunning(client, { process: { cmd: '/bin/cat', args: [] }, stdin: true });
      await client.sendInput({
        process: byPid(cat.pid),
        input: { input: { case: 'stdin', value: Buffer.from('hello ') } },
      });
      await client.sendInput({
        process: byPid(cat.pid),
        input: { input: { case: 'stdin', value: Buffer.from('world\n') } },
      });
      await cat.waitFor('hello world\n');
      await client.closeStdin({ process: byPid(cat.pid) });
      const done = await cat.done;
      assert.equal(done.stdout, 'hello world\n');
      assert.equal(done.end?.exitCode, 0);

      // Unset stdin means enabled (older clients); false means /dev/null.
      const unset = await startRunning(client, { process: { cmd: '/bin/cat', args: [] } });
      await client.sendInput({
        process: byPid(unset.pid),
        input: { input: { case: 'stdin', value: Buffer.from('x\n') } },
      });
      await unset.waitFor('x\n');
      await client.closeStdin({ process: byPid(unset.pid) });
      assert.equal((await unset.done).end?.exitCode, 0);

      const noStdin = await startRunning(client, bash('read line; echo "eof=$?"; sleep 300'));
      await noStdin.waitFor('eof=1');
      await expectCode(
        client.sendInput({ process: byPid(noStdin.pid), input: { input: { case: 'stdin', value: Buffer.from('x') } } }),
        Code.FailedPrecondition,
        'without stdin',
      );
      await expectCode(client.closeStdin({ process: byPid(noStdin.pid) }), Code.FailedPrecondition);
      await expectCode(
        client.sendInput({ process: byPid(noStdin.pid), input: { input: { case: 'pty', value: Buffer.from('x') } } }),
        Code.FailedPrecondition,
        'no PTY',
      );
      await client.sendSignal({ process: byPid(noStdin.pid), signal: Signal.SIGKILL });
      await noStdin.done;
    });

    test('StreamInput: start then data events (and keepalives) in order', async () => {
      const cat = await startRunning(client, { process: { cmd: '/bin/cat', args: [] }, stdin: true });
      async function* input(): AsyncGenerator<MessageInitShape<typeof StreamInputRequestSchema>> {
        yield { event: { case: 'start' as const, value: { process: byPid(cat.pid) } } };
        yield {
          event: {
            case: 'data' as const,
            value: { input: { input: { case: 'stdin' as const, value: Buffer.from('one ') } } },
          },
        };
        yield { event: { case: 'keepalive' as const, value: {} } };
        yield {
          event: {
            case: 'data' as const,
            value: { input: { input: { case: 'stdin' as const, value: Buffer.from('two\n') } } },
          },
        };
      }
      await client.streamInput(input());
      await cat.waitFor('one two\n');
      await client.closeStdin({ process: byPid(cat.pid) });
      assert.equal((await cat.done).stdout, 'one two\n');

      {
        async function* dataFirst() {
          yield {
            event: {
              case: 'data' as const,
              value: { input: { input: { case: 'stdin' as const, value: Buffer.from('x') } } },
            },
          };
        }
        await expectCode(client.streamInput(dataFirst()), Code.InvalidArgument, 'start event');
        async function* unknown() {
          yield { event: { case: 'start' as const, value: { process: byPid(0x7ffffff0) } } };
        }
        await expectCode(client.streamInput(unknown()), Code.NotFound);
      }
    });

    test('PTY: size, echo of input, resize via Update, kill', async () => {
      const pty = await startRunning(client, {
        process: { cmd: '/bin/bash', args: ['--norc', '--noprofile', '-i'], envs: { PS1: '$ ' } },
        pty: { size: { cols: 100, rows: 30 } },
      });
      const send = (text: string) =>
        client.sendInput({ process: byPid(pty.pid), input: { input: { case: 'pty', value: Buffer.from(text) } } });
      await send('stty size; echo "T=$TERM"\n');
      await pty.waitFor('30 100');
      await pty.waitFor('T=xterm-256color');
      await send('echo hi$((40+2))\n');
      await pty.waitFor('hi42');
      await client.update({ process: byPid(pty.pid), pty: { size: { cols: 120, rows: 40 } } });
      await send('stty size\n');
      await pty.waitFor('40 120');

      await expectCode(client.closeStdin({ process: byPid(pty.pid) }), Code.FailedPrecondition, 'Ctrl-D');
      await expectCode(
        client.sendInput({ process: byPid(pty.pid), input: { input: { case: 'stdin', value: Buffer.from('x') } } }),
        Code.FailedPrecondition,
        'PTY',
      );
      await expectCode(
        client.update({ process: byPid(pty.pid), pty: { size: { cols: 0, rows: 10 } } }),
        Code.InvalidArgument,
        'size',
      );

      await client.sendSignal({ process: byPid(pty.pid), signal: Signal.SIGKILL });
      const done = await pty.done;
      assert.equal(done.end?.status, 'signal: killed');
      assert.equal(done.stdout, '', 'PTY output comes as pty data only');
    });

    test('PTY as another user, and Ctrl-D ends the shell', async () => {
      const pty = await startRunning(
        client,
        { process: { cmd: '/bin/sh', args: [] }, pty: { size: { cols: 80, rows: 24 } } },
        { headers: userHeader('nobody') },
      );
      await client.sendInput({
        process: byPid(pty.pid),
        input: { input: { case: 'pty', value: Buffer.from('echo "u=$(id -u) g=$(id -G)"\n') } },
      });
      await pty.waitFor('u=65534 g=65534');
      await client.sendInput({
        process: byPid(pty.pid),
        input: { input: { case: 'pty', value: Buffer.from('\x04') } },
      });
      const done = await pty.done;
      assert.equal(done.end?.exitCode, 0);
      assert.match(done.pty, /u=65534 g=65534\r?\n/, "only the user's own groups, none of envd's");
    });

    test('a client disconnecting mid-stream leaves the process running and envd healthy', async () => {
      const abort = new AbortController();
      const gone = await startRunning(client, bash('while true; do echo tick; sleep 0.05; done'), {
        signal: abort.signal,
      });
      await gone.waitFor('tick');
      abort.abort();
      await gone.done.catch(() => {});
      await sleep(200); // output keeps coming with nobody listening

      const listed = (await client.list({})).processes.map((p) => p.pid);
      assert.ok(listed.includes(gone.pid), 'the process is still running after its client left');
      assert.equal(pidState(gone.pid), 'alive');
      const health = await fetch(`${envd.baseUrl}/health`);
      assert.ok(health.ok, `health answered ${health.status}`);
      assert.equal((await collect(client.start(bash('echo still-works')))).stdout, 'still-works\n');

      // A new client can attach and gets the output from now on.
      const again = await attach(client.connect({ process: byPid(gone.pid) }));
      await again.waitFor('tick');
      await client.sendSignal({ process: byPid(gone.pid), signal: Signal.SIGKILL });
      assert.equal((await again.done).end?.status, 'signal: killed');
    });

    test('the Start timeout kills the process (E2B semantics) and ends the stream with deadline_exceeded', async () => {
      let pid = 0;
      await expectCode(
        collect(client.start(bash('echo up; sleep 300'), { timeoutMs: 700 }), (p) => {
          pid = p;
        }),
        Code.DeadlineExceeded,
      );
      assert.ok(pid > 0);
      await eventually(() => pidState(pid) !== 'alive', 'the timed-out process to be killed');
    });

    test('keepalives are sent on idle streams at the requested interval', async () => {
      const r = await collect(client.start(bash('sleep 2.5'), { headers: { 'keepalive-ping-interval': '1' } }));
      assert.ok(r.keepalives >= 1, `expected keepalives, got ${r.keepalives}`);
      assert.equal(r.end?.exitCode, 0);
    });

    test('bad requests get the right codes and say what was wrong', async () => {
      await expectCode(collect(client.start({ process: { cmd: '', args: [] } })), Code.InvalidArgument, 'cmd');
      await expectCode(collect(client.start({})), Code.InvalidArgument, 'cmd');
      await expectCode(
        collect(client.start({ process: { cmd: '/no/such/binary', args: [] } })),
        Code.InvalidArgument,
        "'/no/such/binary' not found",
      );
      await expectCode(
        collect(client.start({ process: { cmd: '/bin/true', args: [], cwd: '/no/such/dir' } })),
        Code.InvalidArgument,
        "cwd '/no/such/dir' does not exist",
      );
      await expectCode(
        collect(
          client.start({
            process: { cmd: '/bin/true', args: [], cwd: '/no/such/dir' },
            pty: { size: { cols: 80, rows: 24 } },
          }),
        ),
        Code.InvalidArgument,
        'does not exist',
      );
      await expectCode(
        collect(client.start({ process: { cmd: '/bin/true', args: [] }, pty: { size: { cols: 0, rows: 0 } } })),
        Code.InvalidArgument,
        'size',
      );
      await expectCode(
        collect(client.start({ process: { cmd: '/etc/passwd', args: [] } })),
        Code.InvalidArgument,
        'permission denied',
      );

      await expectCode(collect(client.connect({ process: byPid(0x7ffffff0) })), Code.NotFound, 'not found');
      await expectCode(collect(client.connect({ process: byTag('no-such-tag') })), Code.NotFound, 'no-such-tag');
      await expectCode(collect(client.connect({})), Code.InvalidArgument, 'selector');
      await expectCode(
        client.sendInput({ process: byPid(0x7ffffff0), input: { input: { case: 'stdin', value: Buffer.from('x') } } }),
        Code.NotFound,
      );
      await expectCode(client.sendSignal({ process: byPid(0x7ffffff0), signal: Signal.SIGKILL }), Code.NotFound);
      await expectCode(client.closeStdin({ process: byPid(0x7ffffff0) }), Code.NotFound);
      await expectCode(
        client.update({ process: byPid(0x7ffffff0), pty: { size: { cols: 80, rows: 24 } } }),
        Code.NotFound,
      );

      const r = await startRunning(client, bash('echo ready; sleep 300', { stdin: true }));
      await r.waitFor('ready');
      try {
        await expectCode(
          client.sendSignal({ process: byPid(r.pid), signal: Signal.UNSPECIFIED }),
          Code.InvalidArgument,
          'SIGTERM',
        );
        await expectCode(client.sendInput({ process: byPid(r.pid) }), Code.InvalidArgument, 'input');
        await expectCode(
          client.update({ process: byPid(r.pid), pty: { size: { cols: 80, rows: 24 } } }),
          Code.FailedPrecondition,
          'no PTY',
        );
        await expectCode(client.update({ process: byPid(r.pid) }), Code.InvalidArgument, 'pty.size');
      } finally {
        await client.sendSignal({ process: byPid(r.pid), signal: Signal.SIGKILL });
        await r.done;
      }
    });
  });
}

describe('process.Process: users with supplementary groups keep them', () => {
  let envd: TestEnvd;
  let etc = '';
  let home = '';
  before(async () => {
    etc = mkdtempSync(join(tmpdir(), 'wrenn-etc-'));
    home = mkdtempSync(join(tmpdir(), 'wrenn-home-'));
    chownSync(home, 4242, 4242);
    writeFileSync(join(etc, 'passwd'), `root:x:0:0:root:/root:/bin/bash\nwrenntest:x:4242:4242::${home}:/bin/sh\n`);
    writeFileSync(
      join(etc, 'group'),
      'root:x:0:\nwrenntest:x:4242:\nextra1:x:4243:other,wrenntest\nextra2:x:4244:wrenntest\nunrelated:x:4245:other\n',
    );
    envd = await startTestEnvd({ portForwarding: false, etcDir: etc });
  });
  after(async () => {
    await envd?.close();
    rmSync(etc, { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
  });

  test('pipes and PTY run with uid, gid and exactly the groups from /etc/group', {
    skip: process.getuid?.() === 0 ? false : 'needs root to switch users',
  }, async () => {
    const piped = await collect(
      envd.process.start(bash('id -u; id -G; pwd; echo $HOME'), { headers: userHeader('wrenntest') }),
    );
    assert.equal(piped.stdout, `4242\n4242 4243 4244\n${home}\n${home}\n`);
    assert.equal(piped.end?.exitCode, 0);

    const pty = await startRunning(
      envd.process,
      { process: { cmd: '/bin/sh', args: [] }, pty: { size: { cols: 80, rows: 24 } } },
      { headers: userHeader('wrenntest') },
    );
    await envd.process.sendInput({
      process: byPid(pty.pid),
      input: { input: { case: 'pty', value: Buffer.from('echo "g=$(id -G)"; exit\n') } },
    });
    const done = await pty.done;
    assert.match(done.pty, /g=4242 4243 4244\r?\n/);
    assert.equal(done.end?.exitCode, 0);

    // A user added a moment ago (useradd, then run) is found at once despite the passwd cache.
    await expectCode(
      collect(envd.process.start(bash('id -u'), { headers: userHeader('latecomer') })),
      Code.InvalidArgument,
      'latecomer',
    );
    writeFileSync(
      join(etc, 'passwd'),
      `root:x:0:0:root:/root:/bin/bash\nwrenntest:x:4242:4242::${home}:/bin/sh\nlatecomer:x:4250:4250::/:/bin/sh\n`,
    );
    assert.equal(
      (await collect(envd.process.start(bash('id -u'), { headers: userHeader('latecomer') }))).stdout,
      '4250\n',
    );

    // An explicit cwd that does not exist is still reported as such.
    await expectCode(
      collect(
        envd.process.start(bash('pwd', { process: { cmd: '/bin/pwd', args: [], cwd: '/no/such/dir' } }), {
          headers: userHeader('wrenntest'),
        }),
      ),
      Code.InvalidArgument,
      'does not exist',
    );
  });
});

/** A second, independent client (own transport and connection) for the same envd. */
async function startTestEnvdClient(
  envd: TestEnvd,
  variant: { http2: boolean; binary: boolean },
): Promise<ProcessClient> {
  const { createClient } = await import('@connectrpc/connect');
  const { createConnectTransport } = await import('@connectrpc/connect-node');
  return createClient(
    Process,
    createConnectTransport({
      baseUrl: envd.baseUrl,
      httpVersion: variant.http2 ? '2' : '1.1',
      useBinaryFormat: variant.binary,
    }),
  );
}
