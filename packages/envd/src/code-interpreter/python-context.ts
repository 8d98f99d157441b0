// A Python context: an ipykernel (Debian's python3-ipykernel) driven over the Jupyter messaging
// protocol on ZeroMQ (the `zeromq` addon). The kernel binds its sockets on ipc:// paths in a
// private directory named by the connection file; we sign every request with the file's key and
// drop any message whose signature is wrong. kernel_launcher.py starts it (without debugpy) and
// kernel_startup.py (run in the kernel at start) registers E2B's `data` and `chart` results.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Dealer, Subscriber } from 'zeromq';
import { Context } from './context.js';
import { type JupyterMessage, JupyterWire } from './jupyter-wire.js';
import { type Emit, errorLine, resultLine } from './output.js';

const READY_TIMEOUT_MS = 120_000;

interface Kernel {
  proc: ChildProcess;
  dir: string;
  wire: JupyterWire;
  shell: Dealer;
  iopub: Subscriber;
  /** iopub messages by the msg_id of the request they answer. */
  listeners: Map<string, (msg: JupyterMessage) => void>;
  /** Called when the kernel process exits. */
  onExit: Set<() => void>;
  exited: boolean;
}

export class PythonContext extends Context {
  readonly language = 'python' as const;
  private kernel: Kernel | undefined;

  constructor(
    cwd: string,
    private readonly startupFile: string,
  ) {
    super(cwd);
  }

  async start(): Promise<void> {
    this.kernel = await startKernel(this.cwd, this.startupFile);
  }

  protected runCell(code: string, emit: Emit, silent: boolean): Promise<void> {
    const kernel = this.kernel;
    if (!kernel || kernel.exited) return this.kernelDied(emit);
    const generation = this.generation;
    const { msgId, frames } = kernel.wire.request('execute_request', {
      code,
      silent,
      store_history: !silent,
      user_expressions: {},
      allow_stdin: false,
      // Cells run one at a time here, so there is nothing queued to skip; with true an interrupted
      // cell makes the kernel abort the request that follows it.
      stop_on_error: false,
    });
    return new Promise<void>((resolve, reject) => {
      let errored = false;
      const finish = () => {
        kernel.listeners.delete(msgId);
        kernel.onExit.delete(onExit);
        resolve();
      };
      const onExit = () => {
        finish();
        if (generation !== this.generation) emit(errorLine('ContextRestarting', 'Context was restarted'));
        else void this.kernelDied(emit);
      };
      kernel.onExit.add(onExit);
      kernel.listeners.set(msgId, (msg) => {
        const c = msg.content;
        switch (msg.header.msg_type) {
          case 'stream':
            emit({
              type: c.name === 'stdout' ? 'stdout' : 'stderr',
              text: c.text ?? '',
              timestamp: msg.header.date ?? '',
            });
            break;
          case 'execute_input':
            emit({ type: 'number_of_executions', execution_count: c.execution_count });
            break;
          case 'execute_result':
            emit(resultLine((c.data ?? {}) as Record<string, unknown>, true));
            break;
          case 'display_data':
            emit(resultLine((c.data ?? {}) as Record<string, unknown>, false));
            break;
          case 'error':
            if (!errored) {
              errored = true;
              const tb = Array.isArray(c.traceback) ? c.traceback.join('\n') : '';
              emit(errorLine(String(c.ename ?? ''), String(c.evalue ?? ''), tb));
            }
            break;
          case 'status':
            if (c.execution_state === 'idle') finish();
            break;
        }
      });
      kernel.shell.send(frames).catch((err) => {
        kernel.listeners.delete(msgId);
        kernel.onExit.delete(onExit);
        reject(err);
      });
    });
  }

  private async kernelDied(emit: Emit): Promise<void> {
    emit(errorLine('KernelDied', 'the kernel exited; it was restarted'));
    await this.restart();
  }

  async interrupt(): Promise<void> {
    const pid = this.kernel?.proc.pid;
    if (pid && !this.kernel?.exited) signalGroup(pid, 'SIGINT');
  }

  killNow(): void {
    const pid = this.kernel?.proc.pid;
    if (pid && !this.kernel?.exited) signalGroup(pid, 'SIGKILL');
  }

  protected async restartKernel(): Promise<void> {
    await this.shutdown();
    this.kernel = await startKernel(this.cwd, this.startupFile);
  }

  async shutdown(): Promise<void> {
    this.generation++;
    const kernel = this.kernel;
    this.kernel = undefined;
    if (kernel) await stopKernel(kernel);
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

async function startKernel(cwd: string, startupFile: string): Promise<Kernel> {
  const dir = mkdtempSync(join(tmpdir(), 'wrenn-kernel-'));
  const key = randomBytes(32).toString('hex');
  const connectionFile = join(dir, 'connection.json');
  const ip = join(dir, 'k');
  writeFileSync(
    connectionFile,
    JSON.stringify({
      transport: 'ipc',
      ip,
      shell_port: 1,
      iopub_port: 2,
      stdin_port: 3,
      control_port: 4,
      hb_port: 5,
      key,
      signature_scheme: 'hmac-sha256',
      kernel_name: 'python3',
    }),
    { mode: 0o600 },
  );
  const env = { ...process.env };
  delete env.PYTHONPATH;
  const proc = spawn(
    'python3',
    [join(dirname(startupFile), 'kernel_launcher.py'), '-f', connectionFile, `--IPKernelApp.exec_files=${startupFile}`],
    { cwd, env, detached: true, stdio: ['ignore', 'inherit', 'inherit'] },
  );
  const wire = new JupyterWire(key);
  const shell = new Dealer({ linger: 0 });
  const iopub = new Subscriber({ linger: 0 });
  shell.connect(`ipc://${ip}-1`);
  iopub.connect(`ipc://${ip}-2`);
  iopub.subscribe();
  const kernel: Kernel = { proc, dir, wire, shell, iopub, listeners: new Map(), onExit: new Set(), exited: false };
  const exited = new Promise<never>((_, reject) => {
    const fail = (why: string) => {
      kernel.exited = true;
      for (const f of [...kernel.onExit]) f();
      reject(new Error(`the python kernel ${why}`));
    };
    proc.once('error', (err) => fail(`could not start: ${err.message}`));
    proc.once('exit', (code, signal) => fail(`exited (${signal ?? code})`));
  });
  exited.catch(() => undefined);
  void pump(iopub, kernel);
  const shellReplies = new Set<(msg: JupyterMessage) => void>();
  void (async () => {
    try {
      for await (const frames of shell) {
        const msg = wire.parse(frames);
        if (msg) for (const f of shellReplies) f(msg);
      }
    } catch {
      // closed
    }
  })();
  try {
    await Promise.race([waitForReady(kernel, shellReplies), exited]);
  } catch (err) {
    await stopKernel(kernel);
    throw err;
  }
  return kernel;
}

/** Routes iopub messages to the cell that caused them. */
async function pump(iopub: Subscriber, kernel: Kernel): Promise<void> {
  try {
    for await (const frames of iopub) {
      const msg = kernel.wire.parse(frames);
      const parent = msg?.parent_header.msg_id;
      if (msg && parent) kernel.listeners.get(parent)?.(msg);
    }
  } catch {
    // the socket was closed
  }
}

/**
 * As jupyter_client's wait_for_ready: kernel_info requests until one is answered and its status
 * reached us on iopub too (a SUB socket misses what is published before it joined).
 */
async function waitForReady(kernel: Kernel, shellReplies: Set<(msg: JupyterMessage) => void>): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const { msgId, frames } = kernel.wire.request('kernel_info_request', {});
    const answered = new Promise<boolean>((resolve) => {
      let replied = false;
      let published = false;
      const timer = setTimeout(() => done(false), 200);
      const done = (ok: boolean) => {
        clearTimeout(timer);
        shellReplies.delete(onReply);
        kernel.listeners.delete(msgId);
        resolve(ok);
      };
      const onReply = (msg: JupyterMessage) => {
        if (msg.parent_header.msg_id !== msgId) return;
        replied = true;
        if (published) done(true);
      };
      shellReplies.add(onReply);
      kernel.listeners.set(msgId, () => {
        published = true;
        if (replied) done(true);
      });
    });
    await kernel.shell.send(frames);
    if (await answered) return;
  }
  throw new Error(`the python kernel did not answer within ${READY_TIMEOUT_MS / 1000} s`);
}

async function stopKernel(kernel: Kernel): Promise<void> {
  if (!kernel.exited && kernel.proc.pid) {
    const gone = new Promise((resolve) => kernel.proc.once('exit', resolve));
    signalGroup(kernel.proc.pid, 'SIGKILL');
    await gone;
  }
  kernel.shell.close();
  kernel.iopub.close();
  rmSync(kernel.dir, { recursive: true, force: true });
}
