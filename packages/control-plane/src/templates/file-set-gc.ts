// Removal of stored file sets (the COPY contexts the e2b SDK uploads, file-sets.ts): without it they
// stay forever. A file set goes once it was unused for the TTL (WRENN_TEMPLATE_FILES_TTL_SEC, a
// day by default; its mtime is its last use: the upload, each "is it there?" answered yes, each
// build start naming it) and no build of its team is still running. Runs in every control-plane
// process every 10 minutes (each keeps its own uploads under its data dir), and on demand with
// the image prune (POST /v1/images/prune). A pass lists the team directories, nothing more.
import { readdir, rm, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import type { ControlPlaneContext } from '../context.js';

export const DEFAULT_FILE_SET_TTL_MS = 86_400_000;
const INTERVAL_MS = 600_000;
/** A build not finished after this long is taken as dead: it keeps its team's file sets no longer. */
const RUNNING_BUILD_HORIZON_MS = 86_400_000;
const FILE_RE = /^[a-f0-9]{64}\.tar$/;
/** Partial uploads (file-sets.ts writes <hash>.tar.<pid>.<ms>.part) a crash left behind. */
const PART_RE = /^[a-f0-9]{64}\.tar\.\d+\.\d+\.part$/;

/** WRENN_TEMPLATE_FILES_TTL_SEC in ms (a whole number of seconds ≥ 0). */
export function fileSetTtlMs(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.WRENN_TEMPLATE_FILES_TTL_SEC;
  if (raw === undefined || raw === '') return DEFAULT_FILE_SET_TTL_MS;
  if (!/^\d{1,12}$/.test(raw.trim()))
    throw new Error(`WRENN_TEMPLATE_FILES_TTL_SEC=${JSON.stringify(raw)}: expected a whole number of seconds ≥ 0`);
  return Number(raw.trim()) * 1000;
}

/** Marks a file set used now (so the TTL counts from here). */
export async function touchFileSet(path: string): Promise<void> {
  const now = new Date();
  await utimes(path, now, now).catch(() => undefined);
}

export interface FileSetPruneReport {
  removed: number;
  freedBytes: number;
  kept: number;
}

/** Teams with a build that has not finished (started within the horizon). */
async function teamsBuilding(ctx: ControlPlaneContext): Promise<Set<string>> {
  const rows = await ctx.database.db
    .selectFrom('template_builds')
    .select('team_id')
    .where('finished_at', 'is', null)
    .where('started_at', '>', Date.now() - RUNNING_BUILD_HORIZON_MS)
    .execute();
  return new Set(rows.map((r) => r.team_id ?? ''));
}

export async function pruneFileSets(
  ctx: ControlPlaneContext,
  opts: { olderThanMs?: number } = {},
): Promise<FileSetPruneReport> {
  const olderThan = opts.olderThanMs ?? fileSetTtlMs();
  const root = join(ctx.config.dataDir, 'template-files');
  const report: FileSetPruneReport = { removed: 0, freedBytes: 0, kept: 0 };
  const teams = await readdir(root).catch(() => [] as string[]);
  if (teams.length === 0) return report;
  const building = await teamsBuilding(ctx);
  const now = Date.now();
  for (const team of teams) {
    const dir = join(root, team);
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const n of names) {
      const part = PART_RE.test(n);
      if (!part && !FILE_RE.test(n)) continue;
      const s = await stat(join(dir, n)).catch(() => undefined);
      if (!s?.isFile()) continue;
      // A partial upload is never used; one untouched for an hour is a crashed upload's.
      const idle = now - s.mtimeMs;
      const expired = part ? idle >= Math.max(olderThan, 3600_000) : idle >= olderThan && !building.has(team);
      if (!expired) {
        report.kept++;
        continue;
      }
      await rm(join(dir, n), { force: true });
      report.removed++;
      report.freedBytes += s.size;
    }
    // The team's directory stays even when empty: an upload may be creating its file there now.
  }
  return report;
}

/** The periodic pass of this process; returns its stop. */
export function startFileSetGc(ctx: ControlPlaneContext): () => void {
  let timer: NodeJS.Timeout | undefined;
  const tick = async () => {
    try {
      const r = await pruneFileSets(ctx);
      if (r.removed) ctx.log.info({ removed: r.removed, freedBytes: r.freedBytes }, 'stored file sets pruned');
    } catch (err) {
      ctx.log.warn({ err }, 'pruning stored file sets failed');
    }
    if (timer) timer = setTimeout(tick, INTERVAL_MS).unref();
  };
  timer = setTimeout(tick, INTERVAL_MS).unref();
  return () => {
    clearTimeout(timer);
    timer = undefined;
  };
}
