// `wrenn capsule run-code <id> [--language L] <code|->`: runs code in a capsule's code interpreter
// (templates built on code-interpreter-v1), streams its stdout and stderr, then prints the text of
// its results and, for a failed cell, the traceback on stderr (exit code 1).
import { Capsule, type ExecutionResult } from '@wrenn/sdk';
import { CliError, connection, parseIntOption, parsePairs, printJson, run } from './support.js';

export interface RunCodeOpts {
  language?: string;
  context?: string;
  env?: string[];
  timeout?: string;
  json?: boolean;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

/** What a terminal can show of a result: its text, else a note naming the formats it has. */
function describe(r: ExecutionResult): string {
  if (r.text !== undefined) return r.text;
  const formats = Object.keys(r).filter((k) => k !== 'isMainResult' && k !== 'extra');
  return `[result: ${formats.join(', ') || 'empty'}]`;
}

export const runCode = (id: string, source: string, o: RunCodeOpts) =>
  run(async () => {
    if (o.context !== undefined && o.language !== undefined)
      throw new CliError('give either --context or --language, not both');
    const timeoutSec = parseIntOption('--timeout', o.timeout, 0, 86_400);
    const envs = parsePairs('--env', o.env);
    const code = source === '-' ? await readStdin() : source;
    const capsule = await Capsule.connect(id, connection());
    const stream = !o.json;
    const execution = await capsule.runCode(code, {
      ...(o.language !== undefined ? { language: o.language } : {}),
      ...(o.context !== undefined ? { context: o.context } : {}),
      ...(envs ? { envs } : {}),
      timeoutMs: (timeoutSec ?? 60) * 1000,
      ...(stream
        ? {
            onStdout: (m) => process.stdout.write(m.line),
            onStderr: (m) => process.stderr.write(m.line),
          }
        : {}),
    });
    if (o.json) {
      printJson({
        stdout: execution.logs.stdout,
        stderr: execution.logs.stderr,
        results: execution.results,
        error: execution.error ?? null,
        execution_count: execution.executionCount ?? null,
      });
    } else {
      for (const r of execution.results) process.stdout.write(`${describe(r)}\n`);
      if (execution.error)
        process.stderr.write(`${execution.error.traceback || `${execution.error.name}: ${execution.error.value}`}\n`);
    }
    if (execution.error) process.exitCode = 1;
  });
