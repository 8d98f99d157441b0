// JavaScript, TypeScript and bash contexts: a long-lived process each (Debian packages no Jupyter
// kernel for them) that reads cells on stdin and ends each cell's output on stdout and stderr with
// a marker line; on stdout the marker carries the cell's outcome. node_kernel.cjs is the Node one.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { Context } from './context.js';
import type { Language } from './languages.js';
import { type Emit, errorLine, resultLine } from './output.js';

const END = '\x1e__wrenn_cell_end__';
type StreamName = 'stdout' | 'stderr';
/** Gets a stream's next line; the marker's tail ends the cell (null when the process exited). */
type LineSink = (line: string) => void;

export abstract class ProcessContext extends Context {
  private proc: ChildProcessWithoutNullStreams | undefined;
  private sinks: Record<StreamName, LineSink | undefined> = { stdout: undefined, stderr: undefined };
  private onExit: (() => void) | undefined;
  private count = 0;

  protected abstract argv(): string[];
  protected abstract cell(code: string, silent: boolean): string;
  /** What the marker's tail on stdout says about the cell (an error, a result). */
  protected abstract after(status: string, emit: Emit): void;

  async start(): Promise<void> {
    const [cmd = '', ...args] = this.argv();
    const proc = spawn(cmd, args, { cwd: this.cwd, detached: true, stdio: 'pipe' });
    await once(proc, 'spawn');
    this.count = 0;
    this.proc = proc;
    for (const name of ['stdout', 'stderr'] as const) {
      createInterface({ input: proc[name], crlfDelay: Number.POSITIVE_INFINITY }).on('line', (line) =>
        this.sinks[name]?.(line),
      );
    }
    proc.once('exit', () => {
      if (this.proc === proc) this.onExit?.();
    });
    proc.stdin.on('error', () => undefined);
  }

  protected async runCell(code: string, emit: Emit, silent: boolean): Promise<void> {
    const generation = this.generation;
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) await this.restartKernel();
    const proc = this.proc;
    if (!proc) throw new Error(`the ${this.language} process did not start`);
    if (!silent) emit({ type: 'number_of_executions', execution_count: ++this.count });
    const ended = { stdout: false, stderr: false };
    let status: string | null = null;
    const outcome = new Promise<'done' | 'exited'>((resolve) => {
      const sink =
        (name: StreamName): LineSink =>
        (line) => {
          if (ended[name]) return;
          const at = line.indexOf(END);
          if (at < 0) {
            if (!silent) emit({ type: name, text: `${line}\n` });
            return;
          }
          if (at > 0 && !silent) emit({ type: name, text: line.slice(0, at) });
          ended[name] = true;
          if (name === 'stdout') status = line.slice(at + END.length).trim();
          if (ended.stdout && ended.stderr) resolve('done');
        };
      this.sinks = { stdout: sink('stdout'), stderr: sink('stderr') };
      this.onExit = () => resolve('exited');
    });
    proc.stdin.write(this.cell(code, silent));
    const how = await outcome;
    this.sinks = { stdout: undefined, stderr: undefined };
    this.onExit = undefined;
    if (generation !== this.generation) {
      emit(errorLine('ContextRestarting', 'Context was restarted'));
      return;
    }
    if (how === 'exited') {
      emit(errorLine('KernelDied', `the ${this.language} process exited; it was restarted`));
      await this.restart();
    } else if (!silent && status !== null) this.after(status, emit);
  }

  async interrupt(): Promise<void> {
    this.signal('SIGINT');
  }

  killNow(): void {
    this.signal('SIGKILL');
  }

  protected async restartKernel(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async shutdown(): Promise<void> {
    this.generation++;
    await this.stop();
  }

  private async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = once(proc, 'exit');
    this.signal('SIGKILL');
    await gone;
  }

  private signal(signal: NodeJS.Signals): void {
    const pid = this.proc?.pid;
    if (!pid || this.proc?.exitCode !== null || this.proc?.signalCode !== null) return;
    try {
      process.kill(-pid, signal);
    } catch {
      // already gone
    }
  }
}

export class BashContext extends ProcessContext {
  readonly language = 'bash' as const;

  protected argv(): string[] {
    return ['bash', '--noprofile', '--norc'];
  }

  // The cell is read whole by `read -d ''` (NUL-terminated), then eval'ed in this same shell so
  // variables, functions and the working directory stay.
  protected cell(code: string): string {
    const end = END;
    const script =
      `IFS= read -r -d '' __wrenn_cell; eval "$__wrenn_cell"; __wrenn_rc=$?; ` +
      `printf '${end}%s\\n' "$__wrenn_rc"; printf '${end}%s\\n' "$__wrenn_rc" >&2\n`;
    return `${script}${code}\0`;
  }

  protected after(status: string, emit: Emit): void {
    if (status !== '' && status !== '0') emit(errorLine('ExitError', `exit status ${status}`));
  }
}

export class NodeContext extends ProcessContext {
  constructor(
    cwd: string,
    readonly language: Extract<Language, 'javascript' | 'typescript'>,
    private readonly kernelFile: string,
  ) {
    super(cwd);
  }

  protected argv(): string[] {
    return ['node', this.kernelFile];
  }

  protected cell(code: string, silent: boolean): string {
    return `${JSON.stringify({ code, silent, typescript: this.language === 'typescript' })}\n`;
  }

  protected after(status: string, emit: Emit): void {
    if (!status) return;
    let outcome: { result?: Record<string, unknown>; error?: { name?: string; value?: string; traceback?: string } };
    try {
      outcome = JSON.parse(status);
    } catch {
      return;
    }
    if (outcome.result) emit(resultLine(outcome.result, true));
    if (outcome.error)
      emit(errorLine(outcome.error.name ?? 'Error', outcome.error.value ?? '', outcome.error.traceback ?? ''));
  }
}
