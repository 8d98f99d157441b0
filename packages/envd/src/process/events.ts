// Builders for the ProcessEvent messages streamed by Start and Connect, and the exit status
// text E2B's envd reports (Go's os.ProcessState wording: "exit status 1", "signal: killed").

import { constants as osConstants } from 'node:os';
import { create } from '@bufbuild/protobuf';
import {
  type ProcessEvent,
  type ProcessEvent_EndEvent,
  ProcessEvent_EndEventSchema,
  ProcessEventSchema,
} from '@wrenn/protocol/gen/envd/process_pb';

export type OutputStream = 'stdout' | 'stderr' | 'pty';

export function startEvent(pid: number): ProcessEvent {
  return create(ProcessEventSchema, { event: { case: 'start', value: { pid } } });
}

export function dataEvent(stream: OutputStream, bytes: Uint8Array): ProcessEvent {
  return create(ProcessEventSchema, { event: { case: 'data', value: { output: { case: stream, value: bytes } } } });
}

/** One shared instance: keepalives carry no data and messages are never mutated after creation. */
export const KEEPALIVE_EVENT: ProcessEvent = create(ProcessEventSchema, { event: { case: 'keepalive', value: {} } });

export function endEventMessage(end: ProcessEvent_EndEvent): ProcessEvent {
  let message = endMessages.get(end);
  if (!message) endMessages.set(end, (message = create(ProcessEventSchema, { event: { case: 'end', value: end } })));
  return message;
}

// The names Go prints for signals (syscall.Signal.String), so clients see the same text.
const GO_SIGNAL_NAMES: Record<string, string> = {
  SIGHUP: 'hangup',
  SIGINT: 'interrupt',
  SIGQUIT: 'quit',
  SIGILL: 'illegal instruction',
  SIGTRAP: 'trace/breakpoint trap',
  SIGABRT: 'aborted',
  SIGBUS: 'bus error',
  SIGFPE: 'floating point exception',
  SIGKILL: 'killed',
  SIGUSR1: 'user defined signal 1',
  SIGSEGV: 'segmentation fault',
  SIGUSR2: 'user defined signal 2',
  SIGPIPE: 'broken pipe',
  SIGALRM: 'alarm clock',
  SIGTERM: 'terminated',
  SIGXCPU: 'CPU time limit exceeded',
  SIGXFSZ: 'file size limit exceeded',
};

// Messages are never mutated after creation, so the end of a normal exit is built once per code.
const exitEnds = new Map<number, ProcessEvent_EndEvent>();
const endMessages = new WeakMap<ProcessEvent_EndEvent, ProcessEvent>();

/** Exit of a process as code or signal name (as Node reports it), turned into E2B's EndEvent. */
export function endEvent(code: number | null, signal: string | null): ProcessEvent_EndEvent {
  if (!signal && code !== null) {
    let end = exitEnds.get(code);
    if (!end) exitEnds.set(code, (end = buildEndEvent(code, null)));
    return end;
  }
  return buildEndEvent(code, signal);
}

function buildEndEvent(code: number | null, signal: string | null): ProcessEvent_EndEvent {
  if (signal) {
    const number = (osConstants.signals as Record<string, number | undefined>)[signal];
    const status = `signal: ${GO_SIGNAL_NAMES[signal] ?? (number !== undefined ? `signal ${number}` : signal)}`;
    return create(ProcessEvent_EndEventSchema, { exitCode: -1, exited: false, status, error: status });
  }
  const exitCode = code ?? -1;
  const status = `exit status ${exitCode}`;
  return create(
    ProcessEvent_EndEventSchema,
    exitCode === 0 ? { exitCode, exited: true, status } : { exitCode, exited: true, status, error: status },
  );
}

/** Signal name for a signal number (node-pty reports numbers). */
export function signalName(signal: number): string {
  for (const [name, n] of Object.entries(osConstants.signals)) if (n === signal) return name;
  return `SIG${signal}`;
}
