// Where the e2b SDK uploads a COPY step's file set: a PUT of the tar to the URL that GET
// /templates/{id}/files/{hash} returned (E2B hands out a presigned storage URL; here it is a route
// of this API). The SDK sends no API key with it, so the URL carries a signed, expiring, one-use
// token naming the team and the hash (templates/upload-links.ts), which every replica accepts.
import { Type } from '@sinclair/typebox';
import { DomainError } from '@wrenn/protocol';
import type { FastifyPluginAsync } from 'fastify';
import type { ControlPlaneContext } from '../../context.js';
import { FILE_SET_LIMITS, saveFileSet, validateFilesHash } from '../../templates/file-sets.js';
import { claimUpload, issueUploadToken, MAX_TOKEN_LENGTH, verifyUploadToken } from '../../templates/upload-links.js';
import { ApiError } from '../errors.js';
import { e2bErrorHandler } from './errors.js';
import { errorResponses } from './schemas.js';

/**
 * Where the client should upload: the host it reached this API at (a load balancer's, or
 * `api.<domain>` in E2B_DOMAIN mode, whose certificate names no IP address) with the scheme this
 * server serves; the configured URL when the Host is missing or not a plain host[:port].
 */
export function uploadBase(publicUrl: string, host: string | undefined): string {
  const configured = publicUrl.replace(/\/+$/, '');
  if (
    !host ||
    host.length > 261 ||
    !/^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?::\d{1,5})?$/i.test(host)
  )
    return configured;
  return `${new URL(configured).protocol}//${host}`;
}

/** A fresh upload URL for the team's file set `hash`, on the host the client called (see uploadBase). */
export async function uploadUrl(
  ctx: ControlPlaneContext,
  teamId: string,
  templateID: string,
  hash: string,
  host: string | undefined,
): Promise<string> {
  const token = await issueUploadToken(ctx.database.db, teamId, hash);
  const base = uploadBase(ctx.config.publicUrl, host);
  return `${base}/templates/${encodeURIComponent(templateID)}/files/${hash}/upload?token=${token}`;
}

export const templateUploadApi: FastifyPluginAsync<{ ctx: ControlPlaneContext }> = async (app, { ctx }) => {
  app.setErrorHandler(e2bErrorHandler);
  // The body is the raw tar stream, read by the handler (no parser buffers it).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null));
  app.put(
    '/templates/:templateID/files/:hash/upload',
    {
      bodyLimit: Number.MAX_SAFE_INTEGER,
      config: { streamedBody: true },
      schema: {
        tags: ['e2b'],
        summary: "Upload a COPY step's file set (tar or tar.gz) to the URL the files endpoint gave",
        params: Type.Object({
          templateID: Type.String({ minLength: 1, maxLength: 128 }),
          hash: Type.String({ minLength: 1, maxLength: 128 }),
        }),
        querystring: Type.Object({ token: Type.String({ minLength: 1, maxLength: MAX_TOKEN_LENGTH }) }),
        response: { 200: Type.Null(), 413: errorResponses[400], ...errorResponses },
      },
    },
    async (req, reply) => {
      const { hash } = req.params as { hash: string };
      const { token } = req.query as { token: string };
      validateFilesHash(hash);
      const db = ctx.database.db;
      const grant = await verifyUploadToken(db, token, hash);
      const length = Number(req.headers['content-length'] ?? Number.NaN);
      if (length > FILE_SET_LIMITS.maxUploadBytes)
        throw new ApiError(
          413,
          'payload_too_large',
          `an uploaded file set may be at most ${FILE_SET_LIMITS.maxUploadBytes} bytes`,
        );
      // Spent from here on, on every replica, whatever becomes of this upload.
      await claimUpload(db, grant);
      try {
        await saveFileSet(db, grant.teamId, hash, grant.id, req.raw as AsyncIterable<Buffer>);
      } catch (err) {
        if (err instanceof DomainError && err.code === 'payload_too_large')
          throw new ApiError(413, 'payload_too_large', err.message);
        throw err;
      }
      return reply.status(200).send(null);
    },
  );
};
