// A process with stdout/stderr pipes (and a stdin pipe unless disabled), in its own process group.
import type { EventEmitter } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import type { ProcessConfig } from '@wrenn/protocol/gen/envd/process_pb';
import { ManagedProcess, ProcessStateError } from './managed-process.js';
import type { Subscription } from './subscription.js';

/**
 * How long to keep reading output after the process exited. A background job it left behind
 * (`server &`) may hold the pipes open forever; E2B would then never report the end. Whatever the
 * process itself wrote is already in the pipe, so a short drain window loses nothing of it.
 */
export const DRAIN_AFTER_EXIT_MS = 250;

function ignore(): void {}

/** What PipeProcess needs of a child: a ChildProcess, or native-spawn's NativeChild. */
export interface PipeChild extends EventEmitter {
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
}

export class PipeProcess extends ManagedProcess {
  readonly isPty = false;
  private stdinOpen: boolean;
  private drainTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly child: PipeChild,
    pid: number,
    config: ProcessConfig,
    tag: string | undefined,
    private readonly stdinEnabled: boolean,
    firstSubscriber: Subscription,
  ) {
    super(pid, config, tag, firstSubscriber);
    this.stdinOpen = stdinEnabled;
    child.stdout?.on('data', (chunk: Buffer) => this.emitOutput('stdout', chunk));
    child.stderr?.on('data', (chunk: Buffer) => this.emitOutput('stderr', chunk));
    // A stream error without a listener would crash envd; the exit still ends the process normally.
    child.stdout?.on('error', ignore);
    child.stderr?.on('error', ignore);
    // A write to a process that exited fails with EPIPE; the writer is told, envd must not crash.
    child.stdin?.on('error', () => {
      this.stdinOpen = false;
    });
    child.on('error', () => {
      // Errors after a successful spawn (kill on an exited process) carry no news.
    });
    // The end is due once the process exited and both outputs hit EOF. Waiting for 'end' rather than
    // the child's 'close' saves the loop turns in which Node closes the pipe handles.
    this.openOutputs = (child.stdout ? 1 : 0) + (child.stderr ? 1 : 0);
    const outputEnded = () => {
      if (--this.openOutputs === 0 && this.exit) this.finishFromExit();
    };
    child.stdout?.once('end', outputEnded);
    child.stderr?.once('end', outputEnded);
    child.once('exit', (code, signal) => {
      this.exit = { code, signal };
      if (this.openOutputs === 0) this.finishFromExit();
      else this.drainTimer = setTimeout(() => this.stopDraining(), DRAIN_AFTER_EXIT_MS);
    });
    // Fallback for outputs that end without 'end' (read errors).
    child.once('close', (code, signal) => this.finish(code, signal));
  }

  private openOutputs: number;
  private exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  private finishFromExit(): void {
    if (this.drainTimer) clearTimeout(this.drainTimer);
    const exit = this.exit as { code: number | null; signal: NodeJS.Signals | null };
    this.finish(exit.code, exit.signal);
  }

  writeStdin(data: Uint8Array): Promise<void> {
    if (!this.stdinEnabled) {
      throw new ProcessStateError(
        `process ${this.pid} was started without stdin; start it with stdin enabled to send input`,
      );
    }
    const stdin = this.child.stdin;
    if (!this.stdinOpen || !stdin || stdin.writableEnded || stdin.destroyed) {
      throw new ProcessStateError(`stdin of process ${this.pid} is closed`);
    }
    return new Promise((resolve, reject) => {
      stdin.write(data, (err) =>
        err
          ? reject(new ProcessStateError(`writing to stdin of process ${this.pid} failed: ${err.message}`))
          : resolve(),
      );
    });
  }

  closeStdin(): void {
    if (!this.stdinEnabled) {
      throw new ProcessStateError(`process ${this.pid} was started without stdin; there is nothing to close`);
    }
    this.stdinOpen = false;
    this.child.stdin?.end();
  }

  writePty(): void {
    throw new ProcessStateError(`process ${this.pid} has no PTY; send its input as stdin`);
  }

  resize(): void {
    throw new ProcessStateError(
      `process ${this.pid} has no PTY to resize; only processes started with a PTY can be resized`,
    );
  }

  protected pauseOutput(): void {
    this.child.stdout?.pause();
    this.child.stderr?.pause();
  }

  protected resumeOutput(): void {
    this.child.stdout?.resume();
    this.child.stderr?.resume();
  }

  private stopDraining(): void {
    if (this.outputIsPaused) {
      // A slow client is still taking what the process wrote: keep waiting for it.
      this.drainTimer = setTimeout(() => this.stopDraining(), DRAIN_AFTER_EXIT_MS);
      return;
    }
    this.child.stdout?.destroy();
    this.child.stderr?.destroy();
    this.finishFromExit();
  }
}
