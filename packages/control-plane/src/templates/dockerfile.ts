// Dockerfile parser for Wrenn templates. Accepts the subset a template build can run inside a
// capsule: FROM (a Wrenn template, a container image or an earlier stage, `AS name`), ARG, RUN, COPY/ADD of files
// from the uploaded context or from another stage / template (`--from=`), ENV, WORKDIR, USER,
// CMD/ENTRYPOINT (the start command) and a ready check. Anything else is an error naming the
// line, so a build never silently ignores an instruction the user relied on (EXPOSE and LABEL are
// the exceptions: they change nothing inside the machine and are skipped).
//
// ARG follows Docker's scoping: an ARG before the first FROM is global and usable in FROM lines;
// inside a stage an ARG is in scope from its line to the end of that stage (`ARG NAME` without a
// value there takes the global's value). Build arguments override defaults. FROM lines are
// substituted here; everything else is substituted by the builder, which knows the ENV the base
// template brings.
//
// Ready check: `HEALTHCHECK CMD <cmd>` or a `# wrenn:ready <cmd>` comment directive (the directive
// wins when both are present, because it needs no HEALTHCHECK options Wrenn does not use). The
// HEALTHCHECK option --start-period sets how long the check may take to pass (default 2 minutes);
// --interval, --timeout, --retries and --start-interval are accepted and have no effect. The
// check runs until it exits 0 before a capsule created from the template is handed out.

import { imageReferenceProblem } from '@wrenn/protocol';
import { startVector } from './start-command.js';

export class DockerfileError extends Error {
  constructor(
    readonly line: number,
    readonly problem: string,
  ) {
    super(`Dockerfile line ${line}: ${problem}`);
  }
}

/** `user`: run as this user instead of the current USER (E2B's runCmd(cmd, { user })). */
export type RunStep = { kind: 'RUN'; line: number; text: string; argv: string[]; user?: string };
export type CopyStep = {
  kind: 'COPY';
  line: number;
  text: string;
  sources: string[];
  dest: string;
  chown: string | null;
  chmod: number | null;
  /** COPY --from: read from a stage or template instead of the build context. */
  from?: CopyFrom | null;
};
export type EnvStep = { kind: 'ENV'; line: number; text: string; vars: [string, string][] };
export type WorkdirStep = { kind: 'WORKDIR'; line: number; text: string; path: string };
export type UserStep = { kind: 'USER'; line: number; text: string; user: string };
/**
 * CMD / ENTRYPOINT: `argv` is Docker's vector (exec form as written, shell form as /bin/sh -c), composed
 * into the start command by templates/start-command.ts; `command` is it as one shell line. START is
 * E2B's setStartCmd: `command` is the whole start command, whatever the base's ENTRYPOINT.
 */
export type StartStep = {
  kind: 'CMD' | 'ENTRYPOINT' | 'START';
  line: number;
  text: string;
  command: string;
  argv: string[];
};
export type ReadyStep = {
  kind: 'READY';
  line: number;
  text: string;
  command: string | null;
  /** How long the check may take to pass (HEALTHCHECK --start-period); null: the default. */
  timeoutMs: number | null;
};

/** ARG NAME[=default]: one step per name (`ARG A=1 B=2` gives two, same line). */
export type ArgStep = { kind: 'ARG'; line: number; text: string; name: string; defaultValue: string | null };

export type Step = RunStep | CopyStep | EnvStep | WorkdirStep | UserStep | StartStep | ReadyStep | ArgStep;

/** Where COPY --from reads: an earlier stage (by index) or a template by name. */
export type CopyFrom = { stage: number } | { template: string };

export interface Stage {
  index: number;
  /** `AS name`, lower-cased; null when the stage has none. */
  name: string | null;
  /** The FROM word after ARG substitution: a template, or an earlier stage's name when `fromStage` is set. */
  from: string;
  fromLine: number;
  /** The stage this one continues (FROM <stage name>), or null when it starts from a template. */
  fromStage: number | null;
  steps: Step[];
}

export interface ParsedDockerfile {
  /** The final stage's FROM, line and steps (what becomes the template). */
  from: string;
  fromLine: number;
  steps: Step[];
  /** Every stage in order, the last being the final one; absent means one stage (from/steps). */
  stages?: Stage[];
  /** Global ARG values (declared before the first FROM, build arguments applied). */
  globalArgs?: Record<string, string>;
  /** The build arguments given with the build (ARG overrides). */
  buildArgs?: Record<string, string>;
  /** Build arguments no ARG declares (Docker warns about them). */
  unusedBuildArgs?: string[];
}

/** The stages of a parsed Dockerfile (one when it has no `stages`). */
export const stagesOf = (p: ParsedDockerfile): Stage[] =>
  p.stages ?? [{ index: 0, name: null, from: p.from, fromLine: p.fromLine, fromStage: null, steps: p.steps }];

/**
 * The stages the final stage needs (through FROM <stage> and COPY --from), in build order; the
 * others are never built.
 */
export function neededStages(p: ParsedDockerfile): number[] {
  const stages = stagesOf(p);
  const need = new Set<number>();
  const visit = (i: number) => {
    if (need.has(i)) return;
    need.add(i);
    const st = stages[i]!;
    if (st.fromStage !== null) visit(st.fromStage);
    for (const step of st.steps) if (step.kind === 'COPY' && step.from && 'stage' in step.from) visit(step.from.stage);
  };
  visit(stages.length - 1);
  return [...need].sort((a, b) => a - b);
}

/** Limits that keep a hostile Dockerfile from costing more to parse than to reject. */
export const DOCKERFILE_LIMITS = { maxBytes: 256 * 1024, maxSteps: 200 } as const;

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const TEMPLATE_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
/** Docker's stage names (matched without regard to case, so they are lower-cased). */
const STAGE_NAME = /^[a-z][a-z0-9._-]{0,62}$/;
const USER_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,31})?$/;
/** What COPY --chown takes (checked again after ARG/ENV substitution). */
export const COPY_CHOWN_RE = USER_RE;
const READY_DIRECTIVE = /^#\s*wrenn:ready\s+(.*)$/i;
const IGNORED = new Set(['EXPOSE', 'LABEL']);
const UNSUPPORTED: Record<string, string> = {
  VOLUME: 'VOLUME is not supported; capsules have one disk',
  ONBUILD: 'ONBUILD is not supported',
  SHELL: 'SHELL is not supported; RUN uses /bin/sh -c (or use the exec form ["bash", "-c", "..."])',
  STOPSIGNAL: 'STOPSIGNAL is not supported',
  MAINTAINER: 'MAINTAINER is not supported; use a comment',
};

const HEALTHCHECK_OPTIONS = ['interval', 'timeout', 'start-period', 'start-interval', 'retries'];
const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go-style durations as Docker writes them (30s, 1m30s, 500ms); null when malformed. */
export function durationMs(text: string): number | null {
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(text)) return null;
  let total = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
  return Math.round(total);
}

/** Single-quotes a word for /bin/sh. */
export const shellQuote = (w: string): string =>
  /^[A-Za-z0-9_@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;

/** Joins physical lines into instructions (backslash continuations), keeping the first line's number. */
function logicalLines(text: string): { line: number; text: string; directive?: string }[] {
  const out: { line: number; text: string; directive?: string }[] = [];
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  let cur: { line: number; text: string } | null = null;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const trimmed = raw.trim();
    if (trimmed.startsWith('#')) {
      // Comments inside a continuation are dropped, as Docker does; at top level they may be directives.
      if (!cur) {
        const d = READY_DIRECTIVE.exec(trimmed);
        if (d) out.push({ line: i + 1, text: trimmed, directive: d[1]!.trim() });
      }
      continue;
    }
    // Empty lines never end an instruction (Docker skips them inside continuations too).
    if (trimmed === '') continue;
    const continued = /\\\s*$/.test(raw);
    const body = continued ? raw.replace(/\\\s*$/, '') : raw;
    if (cur) cur.text += ` ${body.trim()}`;
    else cur = { line: i + 1, text: body.trim() };
    if (!continued) {
      if (cur.text.trim() !== '') out.push({ line: cur.line, text: cur.text.trim() });
      cur = null;
    }
  }
  if (cur)
    throw new DockerfileError(cur.line, 'the last instruction ends with a line continuation (\\) but nothing follows');
  return out;
}

/** Splits on whitespace, honouring "double" and 'single' quotes and backslash escapes. */
export function splitWords(s: string, line: number): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"' && i + 1 < s.length && '"\\$'.includes(s[i + 1]!)) cur += s[++i];
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < s.length) {
      cur += s[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote) throw new DockerfileError(line, `unterminated ${quote} quote`);
  if (inWord) words.push(cur);
  return words;
}

/** ["a", "b"] (exec form) or null when the argument is not a JSON array. */
function execForm(args: string, line: number, instr: string): string[] | null {
  if (!args.startsWith('[')) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(args);
  } catch {
    throw new DockerfileError(
      line,
      `${instr} looks like the exec form but is not a valid JSON array of strings (use double quotes: ${instr} ["cmd", "arg"])`,
    );
  }
  if (!Array.isArray(parsed) || parsed.length === 0 || !parsed.every((w) => typeof w === 'string')) {
    throw new DockerfileError(line, `${instr} exec form must be a non-empty JSON array of strings`);
  }
  return parsed as string[];
}

/**
 * Replaces $VAR, ${VAR}, ${VAR:-word} (word when VAR is unset or empty) and ${VAR:+word} (word
 * when VAR is set) with values from `env`; unknown names become empty, as in Docker.
 */
export function substitute(s: string, env: Record<string, string>): string {
  return s.replace(
    /\\\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([-+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (m, a?: string, op?: string, word?: string, b?: string) => {
      if (m === '\\$') return '$';
      const name = a ?? b ?? '';
      const value = Object.hasOwn(env, name) ? env[name] : undefined;
      if (op === '-') return value ? value : (word ?? '');
      if (op === '+') return value ? (word ?? '') : '';
      return value ?? '';
    },
  );
}

/** The variable names `$NAME` / `${NAME...}` in a text (what of the ARGs in scope a step uses). */
export function variablesIn(s: string): Set<string> {
  const names = new Set<string>();
  for (const m of s.matchAll(/(?<!\\)\$\{?([A-Za-z_][A-Za-z0-9_]*)/g)) names.add(m[1]!);
  return names;
}

function parseEnv(args: string, line: number): [string, string][] {
  const words = splitWords(args, line);
  if (words.length === 0) throw new DockerfileError(line, 'ENV needs a name and a value (ENV NAME=value)');
  const vars: [string, string][] = [];
  if (!words[0]!.includes('=')) {
    // Legacy form: ENV NAME value with spaces
    const name = words[0]!;
    if (!ENV_NAME.test(name)) throw new DockerfileError(line, `'${name}' is not a valid environment variable name`);
    const rest = args
      .trim()
      .slice(args.trim().indexOf(name) + name.length)
      .trim();
    if (rest === '') throw new DockerfileError(line, `ENV ${name} has no value (ENV ${name}=value)`);
    vars.push([name, splitWords(rest, line).join(' ')]);
    return vars;
  }
  for (const w of words) {
    const eq = w.indexOf('=');
    if (eq <= 0) throw new DockerfileError(line, `ENV expects NAME=value pairs, got '${w}'`);
    const name = w.slice(0, eq);
    if (!ENV_NAME.test(name)) throw new DockerfileError(line, `'${name}' is not a valid environment variable name`);
    vars.push([name, w.slice(eq + 1)]);
  }
  return vars;
}

/** Names and indexes of the stages before the current one, for COPY --from and FROM. */
interface StageIndex {
  byName: Map<string, number>;
  /** The index the stage being parsed will get. */
  current: number;
  /** Names of stages declared later in the file (to explain a forward reference). */
  later: Set<string>;
}

function copyFrom(instr: string, value: string, line: number, stages: StageIndex): CopyFrom {
  if (instr !== 'COPY') throw new DockerfileError(line, 'ADD --from is not supported; use COPY --from');
  if (value.includes('$'))
    throw new DockerfileError(line, `COPY --from=${value}: variables are not supported in --from; name the stage`);
  const v = value.toLowerCase();
  if (/^\d+$/.test(v)) {
    const i = Number(v);
    if (i >= stages.current)
      throw new DockerfileError(
        line,
        `COPY --from=${value}: stage ${i} is not an earlier stage (this is stage ${stages.current}; stages count from 0)`,
      );
    return { stage: i };
  }
  const named = stages.byName.get(v);
  if (named === stages.current)
    throw new DockerfileError(line, `COPY --from=${value}: a stage cannot copy from itself; name an earlier stage`);
  if (named !== undefined) return { stage: named };
  if (stages.later.has(v))
    throw new DockerfileError(
      line,
      `COPY --from=${value}: stage '${v}' is defined later; a stage can only copy from earlier ones`,
    );
  const name = v.replace(/:latest$/, '');
  if (!TEMPLATE_NAME.test(name))
    throw new DockerfileError(
      line,
      `COPY --from=${value}: '${value}' is neither a stage of this Dockerfile nor a template name`,
    );
  return { template: name };
}

function parseCopy(instr: string, args: string, line: number, text: string, stages: StageIndex): CopyStep {
  const fm = /^((?:--\S+\s+)*)([\s\S]*)$/.exec(args)!;
  const flags = fm[1]!.trim() === '' ? [] : fm[1]!.trim().split(/\s+/);
  const rest = fm[2]!.trim();
  let chown: string | null = null;
  let chmod: number | null = null;
  let from: CopyFrom | null = null;
  for (const flag of flags) {
    const eq = flag.indexOf('=');
    const k = flag.slice(2, eq > 0 ? eq : undefined);
    const v = eq > 0 ? flag.slice(eq + 1) : '';
    if (k === 'chown') {
      if (!USER_RE.test(v) && !v.includes('$'))
        throw new DockerfileError(line, `--chown=${v} is not user or user:group`);
      chown = v;
    } else if (k === 'chmod') {
      if (!/^[0-7]{3,4}$/.test(v)) throw new DockerfileError(line, `--chmod=${v} is not an octal mode like 0755`);
      chmod = Number.parseInt(v, 8);
    } else if (k === 'from') {
      if (v === '') throw new DockerfileError(line, 'COPY --from needs a stage or template name (--from=build)');
      from = copyFrom(instr, v, line, stages);
    } else {
      throw new DockerfileError(line, `unknown ${instr} option --${k} (supported: --chown, --chmod, --from)`);
    }
  }
  const list = execForm(rest, line, instr) ?? splitWords(rest, line);
  if (list.length < 2)
    throw new DockerfileError(line, `${instr} needs at least one source and a destination (${instr} src... dest)`);
  const dest = list[list.length - 1]!;
  const sources = list.slice(0, -1);
  for (const s of sources) {
    // A --from source is a path in the stage (wildcards allowed), resolved inside it at build time.
    if (from) continue;
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s))
      throw new DockerfileError(
        line,
        `${instr} from a URL (${s}) is not supported; builds reach no network, put the file in the build context`,
      );
    if (s.startsWith('/') || s.split('/').includes('..'))
      throw new DockerfileError(
        line,
        `${instr} source '${s}' must be a path inside the build context (relative, no '..')`,
      );
  }
  return { kind: 'COPY', line, text, sources, dest, chown, chmod, from };
}

/** ARG NAME[=default] ...: one step per name. */
function parseArg(args: string, line: number, text: string): ArgStep[] {
  const words = splitWords(args, line);
  if (words.length === 0) throw new DockerfileError(line, 'ARG needs a name (ARG NAME or ARG NAME=default)');
  return words.map((w) => {
    const eq = w.indexOf('=');
    const name = eq < 0 ? w : w.slice(0, eq);
    if (!ENV_NAME.test(name))
      throw new DockerfileError(
        line,
        `ARG '${name.slice(0, 60)}' is not a valid name (letters, digits, _; not starting with a digit)`,
      );
    return { kind: 'ARG' as const, line, text, name, defaultValue: eq < 0 ? null : w.slice(eq + 1) };
  });
}

/**
 * The template a FROM line names (after ARG substitution), checked; FROM lines naming an earlier
 * stage never get here.
 */
function fromTemplate(word: string, line: number): string {
  const name = word.replace(/:latest$/, '');
  if (TEMPLATE_NAME.test(name)) return name;
  // Anything else is a container image (registry/repository[:tag][@digest]); the host parses it fully.
  if (!IMAGE_REFERENCE.test(word) || imageReferenceProblem(word))
    throw new DockerfileError(
      line,
      `FROM ${word}: '${word}' is neither a Wrenn template name (base, minimal or a template you built) nor a container image reference (registry/repository:tag)`,
    );
  return word;
}

/** The shape of an image reference: [registry[:port]/]path[:tag][@sha256:hex], the path lower-case. */
const IMAGE_REFERENCE =
  /^[a-z0-9][a-z0-9._\-/]*(?::\d+\/[a-z0-9][a-z0-9._\-/]*)?(?::\w[\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;

/** Stage names declared with FROM ... AS name, to explain references to a later stage. */
function declaredStageNames(lines: { text: string }[]): Set<string> {
  const names = new Set<string>();
  for (const l of lines) {
    const m = /^FROM\s+\S+\s+AS\s+(\S+)\s*$/i.exec(l.text);
    if (m) names.add(m[1]!.toLowerCase());
  }
  return names;
}

/**
 * Parses a Dockerfile; throws DockerfileError naming the first bad line. `buildArgs` override ARG
 * defaults (they are needed here for ARGs used in FROM lines).
 */
export function parseDockerfile(text: string, buildArgs: Record<string, string> = {}): ParsedDockerfile {
  if (typeof text !== 'string' || text.trim() === '')
    throw new DockerfileError(1, 'the Dockerfile is empty; it needs at least a FROM line');
  if (Buffer.byteLength(text) > DOCKERFILE_LIMITS.maxBytes)
    throw new DockerfileError(1, `the Dockerfile is larger than ${DOCKERFILE_LIMITS.maxBytes} bytes`);
  const lines = logicalLines(text);
  const allStageNames = declaredStageNames(lines);
  const stages: Stage[] = [];
  const byName = new Map<string, number>();
  const globalArgs: Record<string, string> = {};
  const declared = new Set<string>();
  let stage: Stage | null = null;
  let stepCount = 0;
  let directiveReady: ReadyStep | null = null;
  for (const l of lines) {
    if (l.directive !== undefined) {
      if (l.directive === '') throw new DockerfileError(l.line, '# wrenn:ready needs a command');
      directiveReady = { kind: 'READY', line: l.line, text: l.text, command: l.directive, timeoutMs: null };
      continue;
    }
    const m = /^([A-Za-z]+)(?:\s+([\s\S]*))?$/.exec(l.text);
    if (!m)
      throw new DockerfileError(
        l.line,
        `cannot read '${l.text.slice(0, 60)}': expected an instruction such as RUN, COPY or ENV`,
      );
    const instr = m[1]!.toUpperCase();
    const args = (m[2] ?? '').trim();
    const line = l.line;
    const text1 = l.text;
    if (!stage && instr !== 'FROM' && instr !== 'ARG')
      throw new DockerfileError(
        line,
        `${instr} before FROM; the first instruction must be FROM <template> (only ARG may come before it)`,
      );
    if (args === '' && instr !== 'HEALTHCHECK') throw new DockerfileError(line, `${instr} needs arguments`);
    const steps: Step[] = stage ? stage.steps : [];
    const stageIndex: StageIndex = {
      byName,
      current: stage ? stage.index : 0,
      later: new Set([...allStageNames].filter((n) => !byName.has(n))),
    };
    switch (instr) {
      case 'ARG': {
        const argSteps = parseArg(args, line, text1);
        for (const a of argSteps) declared.add(a.name);
        if (stage) {
          steps.push(...argSteps);
          break;
        }
        // Global: usable in FROM lines; a stage reads it by declaring `ARG NAME` again.
        for (const a of argSteps) {
          const value = Object.hasOwn(buildArgs, a.name)
            ? buildArgs[a.name]!
            : a.defaultValue === null
              ? undefined
              : substitute(a.defaultValue, globalArgs);
          if (value === undefined) delete globalArgs[a.name];
          else globalArgs[a.name] = value;
        }
        break;
      }
      case 'FROM': {
        const words = splitWords(args, line);
        if (words.length === 0 || words[0]!.startsWith('--'))
          throw new DockerfileError(
            line,
            'FROM takes a template or stage name (FROM base); --platform is not supported',
          );
        if (words.length !== 1 && !(words.length === 3 && /^as$/i.test(words[1]!)))
          throw new DockerfileError(
            line,
            `FROM takes one template or stage name and optionally AS <stage name>, got '${args}'`,
          );
        const word = substitute(words[0]!, globalArgs);
        if (word === '')
          throw new DockerfileError(
            line,
            `FROM ${words[0]}: the name is empty after ARG substitution (give a default or --build-arg)`,
          );
        const alias = words.length === 3 ? words[2]!.toLowerCase() : null;
        if (alias !== null) {
          if (!STAGE_NAME.test(alias))
            throw new DockerfileError(
              line,
              `AS ${words[2]}: '${alias}' is not a valid stage name (a letter, then letters, digits, '.', '_' or '-'; at most 63)`,
            );
          if (byName.has(alias))
            throw new DockerfileError(
              line,
              `AS ${alias}: a stage named '${alias}' is already defined on line ${stages[byName.get(alias)!]!.fromLine}`,
            );
        }
        const parent = byName.get(word.toLowerCase());
        if (parent === undefined && word.toLowerCase() !== alias && stageIndex.later.has(word.toLowerCase()))
          throw new DockerfileError(
            line,
            `FROM ${word}: stage '${word.toLowerCase()}' is defined later (or is this stage); a stage can only start from an earlier one`,
          );
        stage = {
          index: stages.length,
          name: alias,
          from: parent === undefined ? fromTemplate(word, line) : word.toLowerCase(),
          fromLine: line,
          fromStage: parent ?? null,
          steps: [],
        };
        stages.push(stage);
        if (alias !== null) byName.set(alias, stage.index);
        break;
      }
      case 'RUN': {
        const argv = execForm(args, line, 'RUN') ?? ['/bin/sh', '-c', args];
        steps.push({ kind: 'RUN', line, text: text1, argv });
        break;
      }
      case 'COPY':
      case 'ADD':
        steps.push(parseCopy(instr, args, line, text1, stageIndex));
        break;
      case 'ENV':
        steps.push({ kind: 'ENV', line, text: text1, vars: parseEnv(args, line) });
        break;
      case 'WORKDIR': {
        const words = splitWords(args, line);
        if (words.length !== 1) throw new DockerfileError(line, 'WORKDIR takes one path');
        steps.push({ kind: 'WORKDIR', line, text: text1, path: words[0]! });
        break;
      }
      case 'USER': {
        const words = splitWords(args, line);
        if (words.length !== 1 || !USER_RE.test(words[0]!))
          throw new DockerfileError(line, `USER takes one user name (or user:group), got '${args}'`);
        steps.push({ kind: 'USER', line, text: text1, user: words[0]! });
        break;
      }
      case 'CMD':
      case 'ENTRYPOINT': {
        const argv = execForm(args, line, instr);
        steps.push({
          kind: instr,
          line,
          text: text1,
          command: argv ? argv.map(shellQuote).join(' ') : args,
          argv: startVector(argv, args),
        });
        break;
      }
      case 'HEALTHCHECK': {
        if (/^NONE$/i.test(args)) {
          steps.push({ kind: 'READY', line, text: text1, command: null, timeoutMs: null });
          break;
        }
        const cm = /^((?:--[a-z-]+=\S+\s+)*)CMD\s+([\s\S]+)$/i.exec(args);
        if (!cm)
          throw new DockerfileError(
            line,
            'HEALTHCHECK must be HEALTHCHECK [--options] CMD <command> or HEALTHCHECK NONE',
          );
        let timeoutMs: number | null = null;
        for (const opt of cm[1]!.trim().split(/\s+/).filter(Boolean)) {
          const [k, v = ''] = opt.slice(2).split('=', 2) as [string, string?];
          if (!HEALTHCHECK_OPTIONS.includes(k)) {
            throw new DockerfileError(
              line,
              `unknown HEALTHCHECK option --${k} (supported: ${HEALTHCHECK_OPTIONS.map((o) => `--${o}`).join(', ')})`,
            );
          }
          if (k === 'retries') {
            if (!/^\d+$/.test(v)) throw new DockerfileError(line, `--retries=${v} is not a whole number`);
            continue;
          }
          const ms = durationMs(v);
          if (ms === null) throw new DockerfileError(line, `--${k}=${v} is not a duration like 30s, 1m30s or 500ms`);
          if (k === 'start-period') timeoutMs = ms;
        }
        const argv = execForm(cm[2]!.trim(), line, 'HEALTHCHECK CMD');
        steps.push({
          kind: 'READY',
          line,
          text: text1,
          command: argv ? argv.map(shellQuote).join(' ') : cm[2]!.trim(),
          timeoutMs,
        });
        break;
      }
      default:
        if (IGNORED.has(instr)) break;
        throw new DockerfileError(
          line,
          UNSUPPORTED[instr] ??
            `unknown instruction '${m[1]}' (supported: FROM, RUN, COPY, ADD, ENV, WORKDIR, USER, CMD, ENTRYPOINT, HEALTHCHECK, EXPOSE, LABEL)`,
        );
    }
    if (++stepCount > DOCKERFILE_LIMITS.maxSteps)
      throw new DockerfileError(line, `more than ${DOCKERFILE_LIMITS.maxSteps} instructions`);
  }
  const final = stages[stages.length - 1];
  if (!final) throw new DockerfileError(1, 'no FROM line; start with FROM base (or minimal, or a template you built)');
  if (directiveReady) final.steps.push(directiveReady);
  return {
    from: final.from,
    fromLine: final.fromLine,
    steps: final.steps,
    stages,
    globalArgs,
    buildArgs: { ...buildArgs },
    unusedBuildArgs: Object.keys(buildArgs).filter((k) => !declared.has(k)),
  };
}
