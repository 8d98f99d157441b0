// A process on a pseudo-terminal (node-pty): one output stream, input as terminal bytes, resizable.
// node-pty makes the child a session leader, so its pid is also its process group.

import type { ProcessConfig } from '@wrenn/protocol/gen/envd/process_pb';
import type { IPty } from 'node-pty';
import { signalName } from './events.js';
import { ManagedProcess, ProcessStateError } from './managed-process.js';
import type { Subscription } from './subscription.js';

export class PtyProcess extends ManagedProcess {
  readonly isPty = true;

  constructor(
    private readonly term: IPty,
    config: ProcessConfig,
    tag: string | undefined,
    firstSubscriber: Subscription,
  ) {
    super(term.pid, config, tag, firstSubscriber);
    // With `encoding: null` node-pty hands out raw Buffers, so no UTF-8 sequence is split or mangled.
    term.onData((chunk) => this.emitOutput('pty', chunk as unknown as Buffer));
    // node-pty reports exit only after the terminal's output was read to the end.
    // node-pty rethrows unexpected terminal read errors unless someone listens; envd must not crash.
    (term as unknown as { on?(event: 'error', fn: () => void): void }).on?.('error', () => {});
    term.onExit(({ exitCode, signal }) => this.finish(signal ? null : exitCode, signal ? signalName(signal) : null));
  }

  writeStdin(): Promise<void> {
    throw new ProcessStateError(`process ${this.pid} has a PTY; send its input as pty input, not stdin`);
  }

  closeStdin(): void {
    throw new ProcessStateError(
      `process ${this.pid} has a PTY, whose input cannot be closed; send Ctrl-D (byte 0x04) as pty input to signal end of input`,
    );
  }

  writePty(data: Uint8Array): void {
    if (this.end) throw new ProcessStateError(`process ${this.pid} has exited`);
    this.term.write(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  }

  resize(cols: number, rows: number): void {
    if (this.end) throw new ProcessStateError(`process ${this.pid} has exited`);
    this.term.resize(cols, rows);
  }

  protected pauseOutput(): void {
    this.term.pause();
  }

  protected resumeOutput(): void {
    this.term.resume();
  }
}
