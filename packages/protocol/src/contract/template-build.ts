// The template build request's rules that no JSON schema can say: build arguments (Dockerfile
// ARG values given with --build-arg). Returns the first problem as a sentence naming the field.
import { ENV_NAME_RE } from './rules.js';

export const TEMPLATE_BUILD_LIMITS = {
  /** Build arguments in one request. */
  maxBuildArgs: 64,
  /** All build argument names and values together, as JSON (they reach RUN steps as environment). */
  maxBuildArgBytes: 64 * 1024,
} as const;

/** `build_args`: an object of ARG name -> value (names as shell variables, no NUL bytes). */
export function buildArgsProblem(args: unknown, field = 'build_args'): string | undefined {
  if (args === undefined || args === null) return undefined;
  if (typeof args !== 'object' || Array.isArray(args)) return `${field} must be an object of ARG name -> string value`;
  const entries = Object.entries(args);
  if (entries.length > TEMPLATE_BUILD_LIMITS.maxBuildArgs)
    return `${field} may hold at most ${TEMPLATE_BUILD_LIMITS.maxBuildArgs} arguments, got ${entries.length}`;
  for (const [k, v] of entries) {
    if (!ENV_NAME_RE.test(k))
      return `${field} key '${k.slice(0, 60)}' is not a valid ARG name (letters, digits, _; not starting with a digit)`;
    if (typeof v !== 'string') return `${field}.${k} must be a string, got ${typeof v}`;
    if (v.includes('\0')) return `${field}.${k} contains a NUL byte`;
  }
  const bytes = new TextEncoder().encode(JSON.stringify(args)).length;
  if (bytes > TEMPLATE_BUILD_LIMITS.maxBuildArgBytes)
    return `${field} takes at most ${TEMPLATE_BUILD_LIMITS.maxBuildArgBytes} bytes (names and values as JSON), got ${bytes}`;
  return undefined;
}

/**
 * The build log's marker lines: the builder writes them, the CLI and the dashboard read progress
 * out of them (buildProgress). Everything else in the log is command output or notes.
 */
export const BUILD_LOG = {
  step: (n: number, total: number, text: string): string => `Step ${n}/${total} : ${text}`,
  cached: (layer: string): string => ` ---> cached (${layer})`,
  saved: (layer: string, seconds: number): string => ` ---> ${layer} in ${seconds.toFixed(1)} s`,
  ready: (name: string, id: string, seconds: number): string =>
    `Template '${name}' is ready (${id}) in ${seconds.toFixed(1)} s`,
  error: (message: string): string => `ERROR: ${message}`,
} as const;

export type BuildStepState = 'running' | 'done' | 'cached' | 'failed';

export interface BuildProgress {
  /** Steps the build runs (all needed stages); null before the first step line. */
  total: number | null;
  steps: { n: number; text: string; state: BuildStepState }[];
  /** The stage being built (`Stage 'name' FROM x` lines of multi-stage builds). */
  stage: string | null;
  /** The newest line that is not a marker: command output, pull progress, notes. */
  lastLine: string | null;
  outcome: 'ready' | 'error' | null;
}

const STEP_RE = /^Step (\d+)\/(\d+) : (.*)$/;

/** Reads a build log (whole or so far) into its steps and their states. */
export function buildProgress(log: string): BuildProgress {
  const p: BuildProgress = { total: null, steps: [], stage: null, lastLine: null, outcome: null };
  const current = () => p.steps[p.steps.length - 1];
  const finishCurrent = (state: BuildStepState) => {
    const s = current();
    if (s && s.state === 'running') s.state = state;
  };
  for (const line of log.split('\n')) {
    const step = STEP_RE.exec(line);
    if (step) {
      finishCurrent('done');
      p.total = Number(step[2]);
      p.steps.push({ n: Number(step[1]), text: step[3]!, state: 'running' });
    } else if (line.startsWith(' ---> cached')) finishCurrent('cached');
    else if (line.startsWith(' ---> ')) finishCurrent('done');
    else if (line.startsWith('ERROR: ')) {
      finishCurrent('failed');
      p.outcome = 'error';
    } else if (/^Template '.*' is ready/.test(line)) {
      finishCurrent('done');
      p.outcome = 'ready';
    } else if (/^Stage \S+ FROM /.test(line)) {
      finishCurrent('done');
      p.stage = line.slice('Stage '.length, line.indexOf(' FROM '));
    } else if (line.trim() !== '') p.lastLine = line;
  }
  return p;
}
