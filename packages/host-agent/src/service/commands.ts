// Commands, background processes and terminals of a capsule, carried over envd's process service.
import { create } from '@bufbuild/protobuf';
import { InvalidArgumentError } from '@wrenn/protocol';
import { type ProcessSelector as EnvdSelector, type ProcessEvent, Signal } from '@wrenn/protocol/gen/envd/process_pb';
import {
  type ExecRequest,
  type ExecStreamResponse,
  ExecStreamResponseSchema,
  type ProcessSelector,
  type PtyOutput,
  PtyOutputSchema,
} from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import type { EnvdClient } from '../envd-client/index.js';

export function userHeaders(user: string | undefined): Record<string, string> {
  return user ? { authorization: `Basic ${Buffer.from(`${user}:`).toString('base64')}` } : {};
}

export function toEnvdSelector(sel: ProcessSelector | undefined): EnvdSelector['selector'] {
  if (sel?.selector.case === 'pid') return { case: 'pid', value: sel.selector.value };
  if (sel?.selector.case === 'tag' && sel.selector.value) return { case: 'tag', value: sel.selector.value };
  throw new InvalidArgumentError('process selector needs a pid or a tag');
}

function shellCommand(req: ExecRequest): { cmd: string; args: string[] } {
  if (!req.cmd) throw new InvalidArgumentError('cmd is required');
  return { cmd: req.cmd, args: req.args };
}

/** Starts a command in envd and yields its events as host agent stream events. */
export async function* execEvents(
  envd: EnvdClient,
  req: ExecRequest,
  signal: AbortSignal,
  opts: { stdin: boolean; pty?: { cols: number; rows: number } } = { stdin: false },
): AsyncGenerator<ExecStreamResponse> {
  const { cmd, args } = shellCommand(req);
  const stream = envd.process.start(
    {
      process: { cmd, args, envs: req.envs, ...(req.cwd ? { cwd: req.cwd } : {}) },
      ...(req.tag ? { tag: req.tag } : {}),
      stdin: opts.stdin,
      ...(opts.pty ? { pty: { size: opts.pty } } : {}),
    },
    { headers: userHeaders(req.user), signal, timeoutMs: req.timeoutSec ? req.timeoutSec * 1000 : undefined },
  );
  for await (const res of stream) {
    const ev = convert(res.event);
    if (ev) yield ev;
  }
}

export function convert(ev: ProcessEvent | undefined): ExecStreamResponse | undefined {
  const e = ev?.event;
  switch (e?.case) {
    case 'start':
      return create(ExecStreamResponseSchema, { event: { case: 'startPid', value: e.value.pid } });
    case 'data': {
      const o = e.value.output;
      if (o.case === 'stdout' || o.case === 'stderr' || o.case === 'pty') {
        return create(ExecStreamResponseSchema, { event: { case: o.case, value: o.value } });
      }
      return undefined;
    }
    case 'end':
      return create(ExecStreamResponseSchema, {
        event: {
          case: 'exit',
          value: { exitCode: e.value.exitCode, status: e.value.status, error: e.value.error ?? '' },
        },
      });
    default:
      return undefined;
  }
}

export function toPtyOutput(ev: ExecStreamResponse): PtyOutput | undefined {
  const e = ev.event;
  if (e.case === 'startPid') return create(PtyOutputSchema, { event: { case: 'pid', value: e.value } });
  if (e.case === 'pty' || e.case === 'stdout')
    return create(PtyOutputSchema, { event: { case: 'data', value: e.value } });
  if (e.case === 'exit') return create(PtyOutputSchema, { event: { case: 'exit', value: e.value } });
  return undefined;
}

/** Collects a whole command run: stdout, stderr (binary-safe) and the exit code. */
export async function execCollected(envd: EnvdClient, req: ExecRequest, signal: AbortSignal) {
  const out: Uint8Array[] = [];
  const err: Uint8Array[] = [];
  let exitCode = -1;
  let error = '';
  let pid = 0;
  const hasStdin = req.stdin.length > 0;
  const events = execEvents(envd, req, signal, { stdin: hasStdin });
  let stdinSent = false;
  for await (const ev of events) {
    switch (ev.event.case) {
      case 'startPid':
        pid = ev.event.value;
        if (hasStdin && !stdinSent) {
          stdinSent = true;
          await envd.process.sendInput({
            process: { selector: { case: 'pid', value: pid } },
            input: { input: { case: 'stdin', value: req.stdin } },
          });
          await envd.process.closeStdin({ process: { selector: { case: 'pid', value: pid } } });
        }
        break;
      case 'stdout':
        out.push(ev.event.value);
        break;
      case 'stderr':
        err.push(ev.event.value);
        break;
      case 'exit':
        exitCode = ev.event.value.exitCode;
        error = ev.event.value.error;
        break;
    }
  }
  return { stdout: Buffer.concat(out), stderr: Buffer.concat(err), exitCode, error, pid };
}

export function signalFor(sig: number): Signal {
  return sig === 15 ? Signal.SIGTERM : Signal.SIGKILL;
}
