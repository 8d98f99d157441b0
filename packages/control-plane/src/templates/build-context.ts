// The uploaded build context (files COPY/ADD read) and how COPY sources map onto destinations,
// following Docker's rules: a directory source copies its contents, several sources or a
// destination ending in '/' mean "into this directory", '.' is the whole context, and * ? in a
// source match within one path segment.
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import type { CopyStep } from './dockerfile.js';
import { DockerfileError } from './dockerfile.js';

export interface ContextFile {
  data: Buffer;
  /** Permission bits (0644 when the upload carried none). */
  mode: number;
}

/** Relative, normalised paths (no leading '/', no '..') to file contents. */
export type BuildContext = Map<string, ContextFile>;

export const CONTEXT_LIMITS = { maxFiles: 10_000, maxBytes: 256 * 1024 * 1024, maxPathLength: 1024 } as const;

/** A build context the API refuses: 413 when `tooLarge` (over the size limit), else 400. */
export class BuildContextError extends Error {
  constructor(
    message: string,
    readonly tooLarge = false,
  ) {
    super(message);
  }
}

/** Normalises an uploaded path; throws for absolute paths, '..' and empty names. */
export function contextPath(p: string): string {
  if (typeof p !== 'string' || p.length === 0 || p.length > CONTEXT_LIMITS.maxPathLength || p.includes('\0')) {
    throw new BuildContextError(`build context path '${String(p).slice(0, 80)}' is empty, too long or contains NUL`);
  }
  const n = posix
    .normalize(p.replace(/\\/g, '/'))
    .replace(/^(\.\/)+/, '')
    .replace(/\/+$/, '');
  if (n.startsWith('/') || n === '..' || n.startsWith('../') || n === '.' || n === '') {
    throw new BuildContextError(
      `build context path '${p}' must be relative and stay inside the context (no leading '/', no '..')`,
    );
  }
  return n;
}

/** Builds a context from entries, checking the limits. */
export function makeContext(entries: Iterable<[string, ContextFile]>): BuildContext {
  const ctx: BuildContext = new Map();
  let total = 0;
  for (const [p, f] of entries) {
    const path = contextPath(p);
    total += f.data.length;
    if (ctx.size >= CONTEXT_LIMITS.maxFiles)
      throw new BuildContextError(`the build context has more than ${CONTEXT_LIMITS.maxFiles} files`);
    if (total > CONTEXT_LIMITS.maxBytes)
      throw new BuildContextError(`the build context is larger than ${CONTEXT_LIMITS.maxBytes} bytes`, true);
    ctx.set(path, { data: f.data, mode: f.mode & 0o7777 });
  }
  return ctx;
}

export interface CopyPlanEntry {
  /** Absolute destination path in the capsule. */
  dest: string;
  file: ContextFile;
}

export interface CopyPlan {
  entries: CopyPlanEntry[];
  /** Paths to chown (recursively when the destination is a directory). */
  chownRoots: string[];
  recursiveChown: boolean;
  /** sha256 of every destination, mode and content: part of the step's cache key. */
  contentHash: string;
}

const globRe = (pattern: string): RegExp =>
  new RegExp(
    `^${pattern
      .split('/')
      .map((seg) =>
        seg
          .replace(/[.+^${}()|\\]/g, '\\$&')
          .replace(/\*/g, '[^/]*')
          .replace(/\?/g, '[^/]'),
      )
      .join('/')}$`,
  );

/**
 * Resolves a COPY step against the context. `dest` is already variable-substituted; relative
 * destinations are taken from `workdir` ('/' when unset). Throws DockerfileError for sources
 * that match nothing.
 */
export function planCopy(step: CopyStep, dest: string, workdir: string, context: BuildContext): CopyPlan {
  const absDest = posix.isAbsolute(dest) ? posix.normalize(dest) : posix.join(workdir || '/', dest);
  const files = [...context.keys()].sort();
  let intoDir = dest.endsWith('/') || step.sources.length > 1;
  const matches: { path: string; rel: string | null }[] = [];
  for (const raw of step.sources) {
    const src = posix
      .normalize(raw)
      .replace(/^(\.\/)+/, '')
      .replace(/\/+$/, '');
    const found: { path: string; rel: string | null }[] = [];
    if (src === '.' || src === '') {
      intoDir = true;
      for (const f of files) found.push({ path: f, rel: f });
    } else {
      const glob = /[*?]/.test(src);
      const re = glob ? globRe(src) : null;
      if (glob) intoDir = true;
      for (const f of files) {
        const segs = f.split('/');
        for (let i = 1; i <= segs.length; i++) {
          const prefix = segs.slice(0, i).join('/');
          if (re ? re.test(prefix) : prefix === src) {
            if (i === segs.length) found.push({ path: f, rel: null });
            else {
              found.push({ path: f, rel: segs.slice(i).join('/') });
              intoDir = true;
            }
            break;
          }
        }
      }
    }
    if (found.length === 0)
      throw new DockerfileError(
        step.line,
        `COPY source '${raw}' is not in the build context; upload it with the Dockerfile (paths are relative to the context)`,
      );
    matches.push(...found);
  }
  const entries: CopyPlanEntry[] = matches.map((m) => {
    const file = context.get(m.path)!;
    const target =
      m.rel !== null ? posix.join(absDest, m.rel) : intoDir ? posix.join(absDest, posix.basename(m.path)) : absDest;
    return { dest: target, file: step.chmod !== null ? { data: file.data, mode: step.chmod } : file };
  });
  const h = createHash('sha256');
  for (const e of [...entries].sort((a, b) => a.dest.localeCompare(b.dest))) {
    h.update(`${e.dest}\0${e.file.mode}\0`).update(createHash('sha256').update(e.file.data).digest('hex')).update('\n');
  }
  return {
    entries,
    chownRoots: intoDir ? [absDest] : entries.map((e) => e.dest),
    recursiveChown: intoDir,
    contentHash: h.digest('hex'),
  };
}
