// One command run to completion in a capsule through its agent, output collected (binary-safe).
// Streamed commands are carried by the APIs themselves over capsuleAgent.
import { DeadlineExceededError, InvalidArgumentError } from '@wrenn/protocol';
import type { ControlPlaneContext } from '../../context.js';
import { capsuleAgent } from './lookup.js';
import { validateCommandTimeout, validateEnvs } from './validate.js';

export interface ExecInput {
  cmd: string;
  args?: string[];
  envs?: Record<string, string>;
  cwd?: string;
  user?: string;
  stdin?: Uint8Array;
  timeoutSec?: number;
  tag?: string;
}

export interface ExecResult {
  stdout: Buffer;
  stderr: Buffer;
  exitCode: number;
  /** Set when the process ended abnormally (signal, timeout), in the agent's words. */
  error: string;
  pid: number;
}

/** Runs a command to completion and returns its output (bytes, binary-safe) and exit code. */
export async function execCommand(
  ctx: ControlPlaneContext,
  teamId: string,
  id: string,
  input: ExecInput,
  signal?: AbortSignal,
): Promise<ExecResult> {
  if (typeof input.cmd !== 'string' || input.cmd.length === 0) throw new InvalidArgumentError('cmd is required');
  validateCommandTimeout(input.timeoutSec);
  const envs = validateEnvs(input.envs);
  const { agent } = await capsuleAgent(ctx, teamId, id, ['running'], 'run commands in');
  try {
    const r = await agent.exec(
      {
        capsuleId: id,
        cmd: input.cmd,
        args: input.args ?? [],
        envs,
        cwd: input.cwd ?? '',
        user: input.user ?? '',
        stdin: input.stdin ?? new Uint8Array(),
        timeoutSec: input.timeoutSec ?? 0,
        tag: input.tag ?? '',
      },
      signal ? { signal } : {},
    );
    return {
      stdout: Buffer.from(r.stdout),
      stderr: Buffer.from(r.stderr),
      exitCode: r.exitCode,
      error: r.error,
      pid: r.pid,
    };
  } catch (err) {
    if (input.timeoutSec && err instanceof DeadlineExceededError) {
      throw new DeadlineExceededError(
        `the command did not finish within timeout_sec (${input.timeoutSec} s) and was stopped; raise timeout_sec, or use exec/stream to see output as it comes`,
      );
    }
    throw err;
  }
}
