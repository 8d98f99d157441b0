// Removal of stored file sets (the COPY contexts the e2b SDK uploads, kept in the database by
// file-sets.ts): without it they stay forever. A set goes once it was unused for the TTL
// (WRENN_TEMPLATE_FILES_TTL_SEC, a day by default; its last use is its upload, each "is it there?"
// answered yes, each build start naming it) and no build of its team is still running. Chunks no
// set names and no build reads (an upload that failed while its replica died, a set replaced while
// a build read it whose replica then died, a deleted team's) go an hour after their upload
// started, and the record of a used upload link an hour after the link expired (its signature
// refuses it by then). A read whose build finished or is gone is ended. Every replica runs a pass
// every 10 minutes and with the image prune (POST /v1/images/prune); the deletes are idempotent,
// so replicas running it at once do no harm. Sets kept by versions before the database held them
// (<data dir>/template-files) are removed: the SDK uploads a set again when told it is not kept.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ControlPlaneContext } from '../context.js';

export const DEFAULT_FILE_SET_TTL_MS = 86_400_000;
const INTERVAL_MS = 600_000;
/** A build not finished after this long is taken as dead: it keeps its team's file sets no longer. */
const RUNNING_BUILD_HORIZON_MS = 86_400_000;
/** Chunks of an upload no set names are left alone this long after the upload started. */
const ORPHAN_GRACE_MS = 3600_000;

/** WRENN_TEMPLATE_FILES_TTL_SEC in ms (a whole number of seconds ≥ 0). */
export function fileSetTtlMs(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.WRENN_TEMPLATE_FILES_TTL_SEC;
  if (raw === undefined || raw === '') return DEFAULT_FILE_SET_TTL_MS;
  if (!/^\d{1,12}$/.test(raw.trim()))
    throw new Error(`WRENN_TEMPLATE_FILES_TTL_SEC=${JSON.stringify(raw)}: expected a whole number of seconds ≥ 0`);
  return Number(raw.trim()) * 1000;
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
  const db = ctx.database.db;
  const olderThan = opts.olderThanMs ?? fileSetTtlMs();
  const now = Date.now();
  const report: FileSetPruneReport = { removed: 0, freedBytes: 0, kept: 0 };
  await rm(join(ctx.config.dataDir, 'template-files'), { recursive: true, force: true }).catch(() => undefined);

  const idle = await db
    .selectFrom('template_file_sets')
    .select(['team_id', 'hash', 'upload_id', 'bytes', 'last_used_at'])
    .where('last_used_at', '<=', now - olderThan)
    .execute();
  const building = idle.length ? await teamsBuilding(ctx) : new Set<string>();
  for (const s of idle) {
    if (building.has(s.team_id)) continue;
    // Only if still idle and still this upload's: a use or a new upload since the select keeps it.
    const gone = await db
      .deleteFrom('template_file_sets')
      .where('team_id', '=', s.team_id)
      .where('hash', '=', s.hash)
      .where('upload_id', '=', s.upload_id)
      .where('last_used_at', '=', s.last_used_at)
      .executeTakeFirst();
    if (Number(gone.numDeletedRows) === 0) continue;
    // Not while a build reads them (a build of another team cannot: sets are per team): its end drops them.
    await db
      .deleteFrom('template_file_chunks')
      .where('upload_id', '=', s.upload_id)
      .where(({ not, exists, selectFrom }) =>
        not(exists(selectFrom('template_file_readers').select('id').where('upload_id', '=', s.upload_id))),
      )
      .execute();
    report.removed++;
    report.freedBytes += s.bytes;
  }

  // Reads that will never end: their build finished or is gone (its replica died mid-read), or a day old.
  await db
    .deleteFrom('template_file_readers')
    .where(({ or, eb, not, exists, selectFrom }) =>
      or([
        eb('started_at', '<', now - RUNNING_BUILD_HORIZON_MS),
        eb.and([
          eb('build_id', 'is not', null),
          not(
            exists(
              selectFrom('template_builds as b')
                .select('b.id')
                .whereRef('b.id', '=', 'template_file_readers.build_id')
                .where('b.finished_at', 'is', null),
            ),
          ),
        ]),
      ]),
    )
    .execute();

  // Chunks no set names and no build reads, of uploads that started over an hour ago (or whose record is gone).
  const orphans = await db
    .selectFrom('template_file_chunks as c')
    .select('c.upload_id')
    .distinct()
    .where('c.seq', '=', 0)
    .where(({ not, exists, selectFrom }) =>
      not(exists(selectFrom('template_file_sets as s').select('s.hash').whereRef('s.upload_id', '=', 'c.upload_id'))),
    )
    .where(({ not, exists, selectFrom }) =>
      not(exists(selectFrom('template_file_readers as r').select('r.id').whereRef('r.upload_id', '=', 'c.upload_id'))),
    )
    .where(({ not, exists, selectFrom }) =>
      not(
        exists(
          selectFrom('template_uploads as u')
            .select('u.id')
            .whereRef('u.id', '=', 'c.upload_id')
            .where('u.used_at', '>', now - ORPHAN_GRACE_MS),
        ),
      ),
    )
    .execute();
  for (const o of orphans) await db.deleteFrom('template_file_chunks').where('upload_id', '=', o.upload_id).execute();
  await db
    .deleteFrom('template_uploads')
    .where('expires_at', '<', now - ORPHAN_GRACE_MS)
    .execute();

  const left = await db.selectFrom('template_file_sets').select(db.fn.countAll<number>().as('n')).executeTakeFirst();
  report.kept = Number(left?.n ?? 0);
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
