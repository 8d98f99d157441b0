// E2B-compatible API: the routes the official `e2b` SDK calls (E2B_API_URL pointed here, with a
// Wrenn key as E2B_API_KEY). Envd traffic does not come through these routes: with
// E2B_SANDBOX_URL pointed here too, the SDK sends it with E2b-Sandbox-Id/-Port headers and the
// sandbox proxy carries it to the capsule before Fastify sees it.
import type { FastifyPluginAsync } from 'fastify';
import type { ControlPlaneContext } from '../../context.js';
import { requireE2bKey } from './auth.js';
import { e2bErrorHandler } from './errors.js';
import { forkRoutes } from './fork.js';
import { networkRoutes } from './network.js';
import { sandboxRoutes } from './sandboxes.js';
import { teamRoutes } from './team.js';
import { templateBuildRoutes } from './template-builds.js';
import { templateTagRoutes } from './template-tags.js';
import { templateUploadApi } from './template-uploads.js';
import { templateRoutes } from './templates.js';
import { volumeContentApi } from './volume-content.js';
import { volumeRoutes } from './volumes.js';

/** Paths of the E2B-compatible API (errors there take E2B's shape). */
export const isE2bPath = (url: string): boolean =>
  /^\/(v[23]\/)?(sandboxes|templates|snapshots|volumes|volumecontent|teams|api-keys|access-tokens)(\/|\?|$)/.test(url);

export const e2bApi: FastifyPluginAsync<{ ctx: ControlPlaneContext }> = async (app, { ctx }) => {
  // Scoped to this plugin: the native API keeps its own error shape.
  app.setErrorHandler(e2bErrorHandler);
  // The key before anything else: no body of an unauthenticated caller is read.
  app.addHook('onRequest', requireE2bKey(ctx));

  // GET /health is the server's (server.ts): one readiness answer for both APIs.
  sandboxRoutes(app, ctx);
  forkRoutes(app, ctx);
  networkRoutes(app, ctx);
  templateRoutes(app, ctx);
  templateBuildRoutes(app, ctx);
  templateTagRoutes(app, ctx);
  volumeRoutes(app, ctx);
  teamRoutes(app, ctx);
};

/** The volume content API: E2B's error shape, but authenticated by each volume's own token. */
export const e2bVolumeContentApi = volumeContentApi;

/** Uploads of template file sets: E2B's error shape, authenticated by the link's own token. */
export const e2bTemplateUploadApi = templateUploadApi;
