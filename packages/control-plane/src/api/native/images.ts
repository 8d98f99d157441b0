// POST /v1/images/pull: pulls a container image for the team as a capsule create with `image` would
// (same host cache, same image template), answering with the pull's progress lines as they come
// (text/plain), so the CLI and dashboard can show layers and bytes before they create the capsule.
// A missing image, refused credentials or a bad reference are errors before anything is streamed;
// a failure later is a last line `ERROR: <message>`.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { messageOf, PullImageBody } from '@wrenn/protocol';
import type { ControlPlaneContext } from '../../context.js';
import { startPull } from '../../templates/image-bases.js';
import { teamOf } from '../auth.js';
import { errors } from './schemas.js';

export const imageRoutes =
  (ctx: ControlPlaneContext): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.post(
      '/images/pull',
      {
        schema: {
          tags: ['capsules'],
          summary: 'Pull a container image for the team (as a create with `image` would), streaming its progress lines',
          body: PullImageBody,
          response: { 200: { type: 'string' }, ...errors(400, 401, 403, 404, 503) },
        },
      },
      async (req, reply) => {
        const { image, registry_credentials: credentials } = req.body;
        const pull = await startPull(ctx, teamOf(req).id, image, 'image', credentials);
        reply.hijack();
        const res = reply.raw;
        res.writeHead(200, {
          'content-type': 'text/plain; charset=utf-8',
          'cache-control': 'no-store',
          'x-accel-buffering': 'no',
        });
        const write = (line: string) => {
          if (!res.destroyed) res.write(`${line}\n`);
        };
        try {
          const got = await pull.follow(write);
          write(`template ${got.template.name}`);
        } catch (err) {
          write(`ERROR: ${messageOf(err)}`);
        }
        res.end();
      },
    );
  };
