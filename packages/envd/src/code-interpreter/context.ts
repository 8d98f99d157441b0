// What every code-interpreter context does whatever its kernel: one cell at a time, the sandbox's
// env vars set once and a call's own set before its cell and undone after, and a restart that
// ends the cell in flight. The kernels (python-context.ts, process-context.ts) run the cells.
import { randomUUID } from 'node:crypto';
import { envSnippet } from './env-snippets.js';
import type { Language } from './languages.js';
import { type Emit, errorLine } from './output.js';

export abstract class Context {
  readonly id = randomUUID();
  abstract readonly language: Language;
  /** Bumped by a restart: a cell of an older generation ends at once. */
  protected generation = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private sandboxApplied = false;

  constructor(readonly cwd: string) {}

  describe() {
    return { id: this.id, language: this.language, cwd: this.cwd };
  }

  abstract start(): Promise<void>;
  /** Runs one cell, streaming its output; resolves once the kernel is idle again. */
  protected abstract runCell(code: string, emit: Emit, silent: boolean): Promise<void>;
  abstract interrupt(): Promise<void>;
  protected abstract restartKernel(): Promise<void>;
  abstract shutdown(): Promise<void>;
  /** Kills the kernel's process group at once (the server is exiting). */
  abstract killNow(): void;

  async restart(): Promise<void> {
    this.generation++;
    this.sandboxApplied = false;
    await this.restartKernel();
  }

  /** Runs a request's cell after the ones queued before it; always ends with end_of_execution. */
  execute(code: string, envs: Record<string, string>, sandboxEnvs: Record<string, string>, emit: Emit): Promise<void> {
    const run = async () => {
      try {
        if (!this.sandboxApplied && Object.keys(sandboxEnvs).length > 0)
          await this.runSilent(envSnippet(this.language, sandboxEnvs));
        this.sandboxApplied = true;
        const names = Object.keys(envs);
        if (names.length > 0) await this.runSilent(envSnippet(this.language, envs));
        await this.runCell(code, emit, false);
        if (names.length > 0) {
          const keep = Object.fromEntries(names.filter((k) => k in sandboxEnvs).map((k) => [k, sandboxEnvs[k] ?? '']));
          await this.runSilent(
            envSnippet(
              this.language,
              keep,
              names.filter((k) => !(k in sandboxEnvs)),
            ),
          );
        }
      } catch (err) {
        const e = err instanceof Error ? err : new Error(String(err));
        emit(errorLine(e.name, e.message));
      } finally {
        emit({ type: 'end_of_execution' });
      }
    };
    const done = this.queue.then(run);
    this.queue = done;
    return done;
  }

  private async runSilent(code: string): Promise<void> {
    if (code) await this.runCell(code, () => undefined, true);
  }
}
