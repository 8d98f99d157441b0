// process.Process: start commands (pipes or PTY), attach to running ones, send input and signals,
// resize terminals. Wire-compatible with E2B's envd, so the e2b SDK works unchanged.
// Processes outlive the RPC that started them; every attached client gets all later output.
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from '@connectrpc/connect';
import { type Process, type ProcessEvent, type ProcessInput, Signal } from '@wrenn/protocol/gen/envd/process_pb';
import { requestedUserName, resolveUser } from '../auth.js';
import { isWarmUpCall } from '../exec-warm-up.js';
import type { EnvdState } from '../state.js';
import { endEventMessage, KEEPALIVE_EVENT, startEvent } from './events.js';
import { buildLaunchSpec, invalidArgument, validPtySize } from './launch-spec.js';
import { launchProcess } from './launcher.js';
import { type ManagedProcess, ProcessStateError, type SignalName } from './managed-process.js';
import { type FinishedProcess, notFound, ProcessTable } from './process-table.js';
import { Subscription } from './subscription.js';

export interface ProcessServiceHandle {
  impl: Partial<ServiceImpl<typeof Process>>;
  /** Kills every process envd started (envd shutting down). */
  shutdown(): void;
  /** Whether a process envd started is still running (keeps envd's heartbeat fast). */
  running(): boolean;
}

/** Keepalive period when the client does not ask for one (header `Keepalive-Ping-Interval`, seconds). */
export const DEFAULT_KEEPALIVE_MS = 30_000;

function keepaliveMs(ctx: HandlerContext): number {
  const header = ctx.requestHeader.get('keepalive-ping-interval');
  const seconds = header ? Number(header) : Number.NaN;
  return Number.isFinite(seconds) && seconds >= 1 ? seconds * 1000 : DEFAULT_KEEPALIVE_MS;
}

type EventResponse = { event: ProcessEvent };

/** What a Start or Connect stream serves: a live process, or one that ended moments ago. */
type Attached = { proc: ManagedProcess; sub: Subscription } | { finished: FinishedProcess };

/**
 * Streams a process's events to the client: start first, then output and keepalives, then the end.
 * The client going away (or the deadline) ends the stream; the process keeps running.
 * One generator per stream (no delegation) keeps the per-event promise hops down.
 */
async function* streamEvents(
  attach: () => Attached | Promise<Attached>,
  ctx: HandlerContext,
): AsyncGenerator<EventResponse> {
  const attached = await attach();
  if ('finished' in attached) {
    // Exited moments ago: the client still learns how it ended.
    yield { event: startEvent(attached.finished.pid) };
    yield { event: endEventMessage(attached.finished.end) };
    return;
  }
  const { proc, sub } = attached;
  const signal = ctx.signal;
  const onAbort = () => sub.interrupt();
  signal.addEventListener('abort', onAbort);
  let sentSinceTick = true;
  const keepalive = setInterval(() => {
    if (sentSinceTick) sentSinceTick = false;
    else sub.push(KEEPALIVE_EVENT);
  }, keepaliveMs(ctx));
  keepalive.unref();
  try {
    yield { event: startEvent(proc.pid) };
    for (;;) {
      let event = sub.take();
      while (event === undefined) {
        if (sub.finished) {
          // Killed at the Start's deadline: the call ends with deadline_exceeded whichever of the
          // two timers (this kill, the call's own deadline) fired first.
          if (proc.killedAtDeadline && ctx.timeoutMs() !== undefined)
            throw new ConnectError('the operation timed out', Code.DeadlineExceeded);
          return;
        }
        if (signal.aborted) throw ConnectError.from(signal.reason, Code.Canceled);
        await sub.waitForEvent();
        event = sub.take();
      }
      if (signal.aborted) throw ConnectError.from(signal.reason, Code.Canceled);
      sentSinceTick = true;
      yield { event };
    }
  } finally {
    clearInterval(keepalive);
    signal.removeEventListener('abort', onAbort);
    proc.unsubscribe(sub);
  }
}

function failedPrecondition(err: unknown): never {
  if (err instanceof ProcessStateError) throw new ConnectError(err.message, Code.FailedPrecondition);
  throw err;
}

function inputBytes(input: ProcessInput | undefined): { case: 'stdin' | 'pty'; value: Uint8Array } {
  const i = input?.input;
  if (i?.case === 'stdin' || i?.case === 'pty') return i;
  throw invalidArgument('input is missing: give stdin bytes (pipe processes) or pty bytes (PTY processes)');
}

async function deliverInput(proc: ManagedProcess, input: ProcessInput | undefined): Promise<void> {
  const { case: kind, value } = inputBytes(input);
  try {
    if (kind === 'stdin') await proc.writeStdin(value);
    else proc.writePty(value);
  } catch (err) {
    failedPrecondition(err);
  }
}

const SIGNALS: Partial<Record<Signal, SignalName>> = {
  [Signal.SIGTERM]: 'SIGTERM',
  [Signal.SIGKILL]: 'SIGKILL',
};

export function processService(state: EnvdState): ProcessServiceHandle {
  const table = new ProcessTable();

  const impl: Partial<ServiceImpl<typeof Process>> = {
    start: (req, ctx) =>
      streamEvents(async () => {
        const user = resolveUser(state, requestedUserName(ctx.requestHeader.get('authorization')));
        const spec = buildLaunchSpec(state, user, req);
        const sub = new Subscription();
        const proc = await launchProcess(spec, sub);
        // envd's own warm-up call (exec-warm-up.ts) is not a tenant's process: not listed.
        if (!isWarmUpCall(ctx.requestHeader)) table.add(proc);
        // E2B: the Start's timeout bounds the process's life, not only the stream's.
        const timeoutMs = ctx.timeoutMs();
        if (timeoutMs !== undefined && timeoutMs > 0) proc.killAfter(timeoutMs);
        return { proc, sub };
      }, ctx),

    connect: (req, ctx) =>
      streamEvents(() => {
        const proc = table.lookup(req.process);
        if (proc) {
          const sub = new Subscription();
          proc.subscribe(sub);
          return { proc, sub };
        }
        const finished = table.lookupFinished(req.process);
        if (!finished) throw notFound(req.process);
        return { finished };
      }, ctx),

    list() {
      const processes = [];
      for (const proc of table.all()) processes.push({ pid: proc.pid, tag: proc.tag, config: proc.config });
      return { processes };
    },

    async sendInput(req) {
      await deliverInput(table.get(req.process), req.input);
      return {};
    },

    async streamInput(requests) {
      let proc: ManagedProcess | undefined;
      for await (const req of requests) {
        const e = req.event;
        switch (e.case) {
          case 'start':
            proc = table.get(e.value.process);
            break;
          case 'data':
            if (!proc)
              throw invalidArgument(
                'the first StreamInput message must be a start event naming the process (pid or tag)',
              );
            await deliverInput(proc, e.value.input);
            break;
          case 'keepalive':
            break;
          default:
            throw invalidArgument('StreamInput message has no event: send start, data or keepalive');
        }
      }
      return {};
    },

    closeStdin(req) {
      try {
        table.get(req.process).closeStdin();
      } catch (err) {
        failedPrecondition(err);
      }
      return {};
    },

    sendSignal(req) {
      const name = SIGNALS[req.signal];
      if (!name) throw invalidArgument(`signal ${req.signal} is not supported: use SIGTERM (15) or SIGKILL (9)`);
      table.get(req.process).signal(name);
      return {};
    },

    update(req) {
      const proc = table.get(req.process);
      if (!req.pty) throw invalidArgument('nothing to update: give pty.size (cols and rows) to resize the terminal');
      const { cols, rows } = validPtySize(req.pty.size, 'Update');
      try {
        proc.resize(cols, rows);
      } catch (err) {
        failedPrecondition(err);
      }
      return {};
    },
  };

  return {
    impl,
    shutdown() {
      for (const proc of table.all()) proc.kill();
    },
    running() {
      return !table.all().next().done;
    },
  };
}
