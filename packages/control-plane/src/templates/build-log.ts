// A build's log: text appended to template_builds.logs in order (one write in flight, later text
// coalesced into the next write) and an in-process signal so log streams wake up without polling
// the database in a tight loop.
import { EventEmitter } from 'node:events';
import type { ControlPlaneContext } from '../context.js';
import { appendBuildLog } from '../db/repositories/template-builds.js';

/** Emits `<buildId>` after each write reaches the database, and when the build ends. */
export const buildEvents = new EventEmitter();
buildEvents.setMaxListeners(0);

export class BuildLog {
  private pending = '';
  private writing: Promise<void> | null = null;

  constructor(
    private readonly ctx: ControlPlaneContext,
    readonly buildId: string,
  ) {}

  write(text: string): void {
    if (text.length === 0) return;
    this.pending += text;
    this.writing ??= this.drain();
  }

  line(text: string): void {
    this.write(`${text}\n`);
  }

  private async drain(): Promise<void> {
    while (this.pending.length > 0) {
      const text = this.pending;
      this.pending = '';
      try {
        await appendBuildLog(this.ctx.database.db, this.buildId, text);
      } catch (err) {
        this.ctx.log.warn({ err, buildId: this.buildId }, 'could not append to the build log');
      }
      buildEvents.emit(this.buildId);
    }
    this.writing = null;
  }

  /** Resolves once everything written so far is in the database. */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
  }
}
