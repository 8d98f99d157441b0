// Native REST API under /v1 (API key auth), plus the control plane's Prometheus metrics (/metrics)
// and the self-contained browser test page (/test).
import type { FastifyPluginAsync } from 'fastify';
import type { ControlPlaneContext } from '../../context.js';
import { requireApiKey } from '../auth.js';
import { registerMetrics } from '../metrics.js';
import { registerTestPage } from '../test-page.js';
import { capsuleRoutes } from './capsules.js';
import { commandRoutes } from './commands.js';
import { fileRoutes } from './files.js';
import { envdFileRoutes } from './files-from-envd.js';
import { forkRoutes } from './fork.js';
import { imageRoutes } from './images.js';
import { resourceRoutes } from './resources.js';
import { templateTagRoutes } from './template-tags.js';
import { templateBuildRoutes } from './templates-build.js';
import { terminalRoutes } from './terminal.js';
import { volumeRoutes } from './volumes.js';

export const nativeApi: FastifyPluginAsync<{ ctx: ControlPlaneContext }> = async (app, { ctx }) => {
  registerMetrics(app, ctx);
  registerTestPage(app);
  await app.register(
    async (v1) => {
      v1.addHook('onRequest', requireApiKey(ctx));
      // A POST without a body means "no options" (pause, resume, create with defaults).
      v1.addHook('preValidation', async (req) => {
        if (req.body === undefined && req.method === 'POST') req.body = {};
      });
      await v1.register(capsuleRoutes(ctx));
      await v1.register(forkRoutes(ctx));
      await v1.register(commandRoutes(ctx));
      await v1.register(terminalRoutes(ctx));
      await v1.register(fileRoutes(ctx));
      await v1.register(resourceRoutes(ctx));
      await v1.register(templateBuildRoutes(ctx));
      await v1.register(imageRoutes(ctx));
      await v1.register(templateTagRoutes(ctx));
      await v1.register(volumeRoutes(ctx));
      await v1.register(envdFileRoutes(ctx));
    },
    { prefix: '/v1' },
  );
};
