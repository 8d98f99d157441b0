// Dockerfile parser for Wrenn templates. Accepts the subset a template build can run inside a
// capsule: FROM (a Wrenn template), RUN, COPY/ADD of files from the uploaded context, ENV,
// WORKDIR, USER, CMD/ENTRYPOINT (the start command) and a ready check. Anything else is an error
// naming the line, so a build never silently ignores an instruction the user relied on
// (EXPOSE and LABEL are the exceptions: they change nothing inside the machine and are skipped).
//
// Ready check: `HEALTHCHECK CMD <cmd>` or a `# wrenn:ready <cmd>` comment directive (the directive
// wins when both are present, because it needs no HEALTHCHECK options Wrenn does not use). The
// HEALTHCHECK option --start-period sets how long the check may take to pass (default 2 minutes);
// --interval, --timeout, --retries and --start-interval are accepted and have no effect. The
// check runs until it exits 0 before a capsule created from the template is handed out.

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
};
export type EnvStep = { kind: 'ENV'; line: number; text: string; vars: [string, string][] };
export type WorkdirStep = { kind: 'WORKDIR'; line: number; text: string; path: string };
export type UserStep = { kind: 'USER'; line: number; text: string; user: string };
/** CMD / ENTRYPOINT: a shell command line (exec form is quoted into one). */
export type StartStep = { kind: 'CMD' | 'ENTRYPOINT'; line: number; text: string; command: string | null };
export type ReadyStep = {
  kind: 'READY';
  line: number;
  text: string;
  command: string | null;
  /** How long the check may take to pass (HEALTHCHECK --start-period); null: the default. */
  timeoutMs: number | null;
};

export type Step = RunStep | CopyStep | EnvStep | WorkdirStep | UserStep | StartStep | ReadyStep;

export interface ParsedDockerfile {
  from: string;
  fromLine: number;
  steps: Step[];
}

/** Limits that keep a hostile Dockerfile from costing more to parse than to reject. */
export const DOCKERFILE_LIMITS = { maxBytes: 256 * 1024, maxSteps: 200 } as const;

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const TEMPLATE_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const USER_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,31})?$/;
const READY_DIRECTIVE = /^#\s*wrenn:ready\s+(.*)$/i;
const IGNORED = new Set(['EXPOSE', 'LABEL']);
const UNSUPPORTED: Record<string, string> = {
  ARG: 'ARG is not supported; use ENV',
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

/** Replaces $VAR and ${VAR} with values from `env` (unknown names become empty, as in Docker). */
export function substitute(s: string, env: Record<string, string>): string {
  return s.replace(/\\\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (m, a?: string, b?: string) =>
    m === '\\$' ? '$' : (env[a ?? b ?? ''] ?? ''),
  );
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

function parseCopy(instr: string, args: string, line: number, text: string): CopyStep {
  const fm = /^((?:--\S+\s+)*)([\s\S]*)$/.exec(args)!;
  const flags = fm[1]!.trim() === '' ? [] : fm[1]!.trim().split(/\s+/);
  const rest = fm[2]!.trim();
  let chown: string | null = null;
  let chmod: number | null = null;
  for (const flag of flags) {
    const eq = flag.indexOf('=');
    const k = flag.slice(2, eq > 0 ? eq : undefined);
    const v = eq > 0 ? flag.slice(eq + 1) : '';
    if (k === 'chown') {
      if (!USER_RE.test(v)) throw new DockerfileError(line, `--chown=${v} is not user or user:group`);
      chown = v;
    } else if (k === 'chmod') {
      if (!/^[0-7]{3,4}$/.test(v)) throw new DockerfileError(line, `--chmod=${v} is not an octal mode like 0755`);
      chmod = Number.parseInt(v, 8);
    } else if (k === 'from') {
      throw new DockerfileError(
        line,
        `${instr} --from is not supported (no multi-stage builds); copy files from the build context`,
      );
    } else {
      throw new DockerfileError(line, `unknown ${instr} option --${k} (supported: --chown, --chmod)`);
    }
  }
  const list = execForm(rest, line, instr) ?? splitWords(rest, line);
  if (list.length < 2)
    throw new DockerfileError(line, `${instr} needs at least one source and a destination (${instr} src... dest)`);
  const dest = list[list.length - 1]!;
  const sources = list.slice(0, -1);
  for (const s of sources) {
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
  return { kind: 'COPY', line, text, sources, dest, chown, chmod };
}

/** Parses a Dockerfile; throws DockerfileError naming the first bad line. */
export function parseDockerfile(text: string): ParsedDockerfile {
  if (typeof text !== 'string' || text.trim() === '')
    throw new DockerfileError(1, 'the Dockerfile is empty; it needs at least a FROM line');
  if (Buffer.byteLength(text) > DOCKERFILE_LIMITS.maxBytes)
    throw new DockerfileError(1, `the Dockerfile is larger than ${DOCKERFILE_LIMITS.maxBytes} bytes`);
  let from: { name: string; line: number } | null = null;
  const steps: Step[] = [];
  let directiveReady: ReadyStep | null = null;
  for (const l of logicalLines(text)) {
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
    if (!from && instr !== 'FROM')
      throw new DockerfileError(line, `${instr} before FROM; the first instruction must be FROM <template>`);
    if (args === '' && instr !== 'HEALTHCHECK') throw new DockerfileError(line, `${instr} needs arguments`);
    switch (instr) {
      case 'FROM': {
        if (from) throw new DockerfileError(line, 'a second FROM (multi-stage builds) is not supported');
        const words = splitWords(args, line);
        if (words.length !== 1 || words[0]!.startsWith('--'))
          throw new DockerfileError(
            line,
            'FROM takes one template name (FROM base); AS and --platform are not supported',
          );
        const name = words[0]!.replace(/:latest$/, '');
        if (!TEMPLATE_NAME.test(name))
          throw new DockerfileError(
            line,
            `FROM ${words[0]}: '${name}' is not a Wrenn template name (use base, minimal or a template you built)`,
          );
        from = { name, line };
        break;
      }
      case 'RUN': {
        const argv = execForm(args, line, 'RUN') ?? ['/bin/sh', '-c', args];
        steps.push({ kind: 'RUN', line, text: text1, argv });
        break;
      }
      case 'COPY':
      case 'ADD':
        steps.push(parseCopy(instr, args, line, text1));
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
        steps.push({ kind: instr, line, text: text1, command: argv ? argv.map(shellQuote).join(' ') : args });
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
    if (steps.length > DOCKERFILE_LIMITS.maxSteps)
      throw new DockerfileError(line, `more than ${DOCKERFILE_LIMITS.maxSteps} instructions`);
  }
  if (!from) throw new DockerfileError(1, 'no FROM line; start with FROM base (or minimal, or a template you built)');
  if (directiveReady) steps.push(directiveReady);
  return { from: from.name, fromLine: from.line, steps };
}
