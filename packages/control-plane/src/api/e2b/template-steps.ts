// The e2b SDK's build request (TemplateBuildStartV2: a base, a list of {type, args, force,
// filesHash} steps, a start and a ready command) as the builder's steps. The SDK expands its
// helpers before sending (remove, rename, makeDir, makeSymlink, pip/npm/apt installs are RUN
// steps), so four types arrive: RUN, COPY, ENV, WORKDIR, USER. Like E2B, a build first switches
// to the user `user`, so commands and copied files belong to it unless a step says otherwise.
import { InvalidArgumentError } from '@wrenn/protocol';
import type { BuildStep } from '../../templates/builder.js';
import { DOCKERFILE_LIMITS } from '../../templates/dockerfile.js';

export interface E2bStep {
  type: string;
  args?: string[];
  force?: boolean;
  filesHash?: string;
}

export interface E2bBuildStart {
  fromImage?: string;
  fromTemplate?: string;
  fromImageRegistry?: unknown;
  startCmd?: string;
  readyCmd?: string;
  steps?: E2bStep[];
  force?: boolean;
}

/** E2B's default build user (its "user" phase). */
export const E2B_BUILD_USER = 'user';
/** The image `fromBaseImage()` names: Wrenn's `base` template is its equivalent. */
const E2B_BASE_IMAGES = new Set(['e2bdev/base', 'e2bdev/base:latest', 'docker.io/e2bdev/base']);
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const USER_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,31})?$/;
const MODE_RE = /^[0-7]{3,4}$/;
const GLOB_CHARS = /[*?[{]/;

export interface MappedBuild {
  /** A Wrenn template name, or an image reference when `fromImage` is a registry image. */
  from: { template: string } | { image: string };
  fromLabel: string;
  steps: BuildStep[];
  /** The COPY steps' file sets, which must have been uploaded. */
  filesHashes: string[];
}

/**
 * The directory or file a COPY source names, without its glob part, as E2B unpacks it: the
 * segments before the first one holding a glob character ('folder/*' → 'folder', '*.txt' → '.').
 */
export function copySourceRoot(src: string): string {
  const segs = src
    .replace(/^(\.\/)+/, '')
    .split('/')
    .filter((s) => s !== '' && s !== '.');
  const cut = segs.findIndex((s) => GLOB_CHARS.test(s));
  const kept = cut < 0 ? segs : segs.slice(0, cut);
  return kept.length === 0 ? '.' : kept.join('/');
}

const problem = (n: number, message: string) => new InvalidArgumentError(`step ${n}: ${message}`);

function text(n: number, v: unknown, what: string, { optional = false, max = 65536 } = {}): string {
  if (v === undefined && optional) return '';
  if (typeof v !== 'string' || (!optional && v.length === 0) || v.length > max || v.includes('\0'))
    throw problem(
      n,
      `${what} must be a ${optional ? '' : 'non-empty '}string of at most ${max} characters without NUL`,
    );
  return v;
}

function mapStep(s: E2bStep, n: number): BuildStep {
  const args = s.args ?? [];
  const force = s.force === true;
  switch (s.type) {
    case 'RUN': {
      const cmd = text(n, args[0], 'RUN command');
      const user = text(n, args[1], 'RUN user', { optional: true, max: 65 });
      if (user && !USER_RE.test(user)) throw problem(n, `RUN user '${user}' is not a user name`);
      return {
        kind: 'RUN',
        line: n,
        text: user ? `RUN (as ${user}) ${cmd}` : `RUN ${cmd}`,
        argv: ['/bin/sh', '-c', cmd],
        ...(user ? { user } : {}),
        force,
      };
    }
    case 'COPY': {
      const src = text(n, args[0], 'COPY source', { max: 4096 });
      const dest = text(n, args[1], 'COPY destination', { max: 4096 });
      const owner = text(n, args[2], 'COPY user', { optional: true, max: 65 });
      const mode = text(n, args[3], 'COPY mode', { optional: true, max: 4 });
      if (src.startsWith('/') || src.split('/').includes('..'))
        throw problem(n, `COPY source '${src}' must be a path inside the context directory (relative, no '..')`);
      if (owner && !USER_RE.test(owner)) throw problem(n, `COPY user '${owner}' is not user or user:group`);
      if (mode && !MODE_RE.test(mode)) throw problem(n, `COPY mode '${mode}' is not an octal mode like 0755`);
      if (typeof s.filesHash !== 'string' || !/^[a-f0-9]{64}$/.test(s.filesHash))
        throw problem(n, 'COPY needs the filesHash of its uploaded files (hex SHA-256)');
      return {
        kind: 'COPY_ARCHIVE',
        line: n,
        text: `COPY ${src} ${dest}${owner ? ` (owner ${owner})` : ''}${mode ? ` (mode ${mode})` : ''}`,
        filesHash: s.filesHash,
        source: copySourceRoot(src),
        dest,
        owner: owner || null,
        mode: mode || null,
        force,
      };
    }
    case 'ENV': {
      if (args.length === 0 || args.length % 2 !== 0) throw problem(n, 'ENV takes name, value pairs');
      const vars: [string, string][] = [];
      for (let i = 0; i < args.length; i += 2) {
        const name = text(n, args[i], 'ENV name', { max: 256 });
        if (!ENV_NAME.test(name)) throw problem(n, `'${name}' is not a valid environment variable name`);
        vars.push([name, text(n, args[i + 1], `ENV ${name} value`, { optional: true })]);
      }
      return {
        kind: 'ENV',
        line: n,
        text: `ENV ${vars.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' ')}`,
        vars,
        force,
      };
    }
    case 'WORKDIR': {
      const path = text(n, args[0], 'WORKDIR path', { max: 4096 });
      return { kind: 'WORKDIR', line: n, text: `WORKDIR ${path}`, path, force };
    }
    case 'USER': {
      const user = text(n, args[0], 'USER name', { max: 65 });
      if (!USER_RE.test(user)) throw problem(n, `USER takes a user name (or user:group), got '${user}'`);
      return { kind: 'USER', line: n, text: `USER ${user}`, user, force };
    }
    default:
      throw problem(
        n,
        `unknown step type '${String(s.type).slice(0, 40)}' (supported: RUN, COPY, ENV, WORKDIR, USER; the SDK's other helpers are sent as RUN)`,
      );
  }
}

/** Maps and validates a build request (a COPY names its file set by hash, kept per team: file-sets.ts). */
export function mapBuildStart(body: E2bBuildStart): MappedBuild {
  const hasImage = typeof body.fromImage === 'string' && body.fromImage !== '';
  const hasTemplate = typeof body.fromTemplate === 'string' && body.fromTemplate !== '';
  if (hasImage === hasTemplate)
    throw new InvalidArgumentError('give exactly one of fromImage and fromTemplate (the base of the template)');
  let from: MappedBuild['from'];
  let fromLabel: string;
  if (hasTemplate) {
    from = { template: body.fromTemplate!.replace(/:default$/, '') };
    fromLabel = 'fromTemplate';
  } else if (E2B_BASE_IMAGES.has(body.fromImage!)) {
    from = { template: 'base' };
    fromLabel = 'fromImage (as Wrenn template)';
  } else {
    from = { image: body.fromImage! };
    fromLabel = 'fromImage';
  }
  const given = body.steps ?? [];
  if (!Array.isArray(given)) throw new InvalidArgumentError('steps must be a list');
  if (given.length > DOCKERFILE_LIMITS.maxSteps)
    throw new InvalidArgumentError(`a template may have at most ${DOCKERFILE_LIMITS.maxSteps} steps`);
  const steps: BuildStep[] = [{ kind: 'USER', line: 0, text: `USER ${E2B_BUILD_USER}`, user: E2B_BUILD_USER }];
  const filesHashes: string[] = [];
  for (const [i, s] of given.entries()) {
    const step = mapStep(s, i + 1);
    if (step.kind === 'COPY_ARCHIVE') filesHashes.push(step.filesHash);
    steps.push(step);
  }
  const n = given.length + 1;
  if (body.startCmd !== undefined && body.startCmd !== '')
    steps.push({
      kind: 'START',
      line: n,
      text: `START ${body.startCmd}`,
      command: text(n, body.startCmd, 'startCmd'),
      argv: [],
    });
  if (body.readyCmd !== undefined && body.readyCmd !== '')
    steps.push({
      kind: 'READY',
      line: n,
      text: `READY ${body.readyCmd}`,
      command: text(n, body.readyCmd, 'readyCmd'),
      timeoutMs: null,
    });
  return { from, fromLabel, steps, filesHashes };
}
