// POST /v1/images/prune (admin key) {older_than_sec?}: removes, on every reachable host, the image
// templates and cached image layers that nothing uses (agent oci/image-gc.ts), and the stored file
// sets of finished E2B template builds (templates/file-set-gc.ts), unused for `older_than_sec`
// (default: each host's WRENN_IMAGE_KEEP_SEC and this process's WRENN_TEMPLATE_FILES_TTL_SEC;
// 0: everything unused). Hosts and this process also do it periodically; this is for "now".
// One host failing is reported in its entry; the others are still pruned.
import { type Static, Type } from '@sinclair/typebox';
import { messageOf } from '@wrenn/protocol';
import type { FastifyPluginAsync } from 'fastify';
import type { ControlPlaneContext } from '../context.js';
import { listHosts } from '../db/repositories/hosts.js';
import { pruneFileSets } from '../templates/file-set-gc.js';
import { requireAdmin } from './admin-auth.js';

const ErrorBody = Type.Object({ error: Type.Object({ code: Type.String(), message: Type.String() }) });
const MAX_OLDER_THAN_SEC = 10 * 365 * 86_400;

const PruneRequest = Type.Object(
  {
    older_than_sec: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: MAX_OLDER_THAN_SEC,
        description:
          'Remove only what was unused this long (default: the configured keep times; 0: all that is unused)',
      }),
    ),
  },
  { additionalProperties: false },
);

const HostPrune = Type.Object({
  host_id: Type.String(),
  removed_templates: Type.Array(Type.String()),
  removed_layers: Type.Array(Type.String()),
  freed_bytes: Type.Number(),
  kept_layers: Type.Integer(),
  cache_bytes: Type.Number(),
  error: Type.Optional(Type.String()),
});
const PruneResponse = Type.Object({
  hosts: Type.Array(HostPrune),
  file_sets: Type.Object({ removed: Type.Integer(), freed_bytes: Type.Number(), kept: Type.Integer() }),
});
type PruneResult = Static<typeof PruneResponse>;

export async function pruneImages(ctx: ControlPlaneContext, olderThanSec?: number): Promise<PruneResult> {
  const hosts = (await listHosts(ctx.database.db)).filter((h) => h.status !== 'unreachable');
  const perHost = await Promise.all(
    hosts.map(async (h) => {
      try {
        const r = await ctx.agents
          .client(h)
          .pruneImages(olderThanSec === undefined ? {} : { olderThanSec: BigInt(olderThanSec) });
        return {
          host_id: h.id,
          removed_templates: r.removedTemplates,
          removed_layers: r.removedLayers,
          freed_bytes: Number(r.freedBytes),
          kept_layers: r.keptLayers,
          cache_bytes: Number(r.cacheBytes),
        };
      } catch (err) {
        return {
          host_id: h.id,
          removed_templates: [],
          removed_layers: [],
          freed_bytes: 0,
          kept_layers: 0,
          cache_bytes: 0,
          error: messageOf(err),
        };
      }
    }),
  );
  const files = await pruneFileSets(ctx, olderThanSec === undefined ? {} : { olderThanMs: olderThanSec * 1000 });
  return { hosts: perHost, file_sets: { removed: files.removed, freed_bytes: files.freedBytes, kept: files.kept } };
}

export const pruneRoutes: FastifyPluginAsync<{ ctx: ControlPlaneContext }> = async (app, { ctx }) => {
  app.post(
    '/v1/images/prune',
    {
      onRequest: async (req) => {
        await requireAdmin(ctx, req);
      },
      schema: {
        tags: ['hosts'],
        summary: 'Remove image templates, cached image layers and stored build file sets that nothing uses (admin)',
        body: PruneRequest,
        response: { 200: PruneResponse, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody },
      },
    },
    async (req) => {
      const body = (req.body ?? {}) as Static<typeof PruneRequest>;
      const result = await pruneImages(ctx, body.older_than_sec);
      ctx.log.info(
        {
          olderThanSec: body.older_than_sec,
          templates: result.hosts.reduce((n, h) => n + h.removed_templates.length, 0),
          layers: result.hosts.reduce((n, h) => n + h.removed_layers.length, 0),
          fileSets: result.file_sets.removed,
        },
        'images pruned',
      );
      return result;
    },
  );
};
