// Removing build layers nothing needs any more. Layers are the build cache, so they outlive the
// templates built from them; this deletes a team's layers that no template stacks on and no live
// capsule runs from, repeatedly (removing a layer can free its parent), and keeps the rest.
import type { ControlPlaneContext } from '../context.js';
import { listTemplates } from '../db/repositories/templates.js';
import { deleteTemplate } from '../services/snapshots.js';
import { isLayerName } from './builder.js';

export interface PruneResult {
  deleted: string[];
  /** Layers kept, with the reason (used by a template, a capsule, or a failed deletion). */
  kept: { name: string; reason: string }[];
}

export async function pruneLayers(ctx: ControlPlaneContext, teamId: string): Promise<PruneResult> {
  const deleted: string[] = [];
  const failed = new Map<string, string>();
  for (;;) {
    const all = (await listTemplates(ctx.database.db, { teamId })).filter((t) => t.teamId === teamId);
    const parents = new Set(all.map((t) => t.parent).filter((p): p is string => p !== null));
    const candidates = all.filter((t) => isLayerName(t.name) && !parents.has(t.name) && !failed.has(t.name));
    if (candidates.length === 0) {
      const kept = all
        .filter((t) => isLayerName(t.name))
        .map((t) => ({ name: t.name, reason: failed.get(t.name) ?? 'a template is built on it' }));
      return { deleted, kept };
    }
    for (const t of candidates) {
      try {
        await deleteTemplate(ctx, teamId, t.name);
        deleted.push(t.name);
      } catch (err) {
        // In use by a capsule (409) or not removable on its host: keep it and say why.
        failed.set(t.name, err instanceof Error ? err.message : String(err));
      }
    }
  }
}
