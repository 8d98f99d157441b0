// /v1/capsules: create, list, get, destroy, pause, resume, ping, timeout, network, exec, metrics, events.

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@fastify/type-provider-typebox';
import {
  type CapsuleNetworkJson,
  CapsuleNetworkSchema,
  type CreateNetworkJson,
  camelKeys,
  type EgressPolicy,
  InvalidArgumentError,
  pickPlainFields,
  UpdateNetworkBody,
  type UpdateNetworkBodyJson,
  withoutPlainFields,
} from '@wrenn/protocol';
import type { ControlPlaneContext } from '../../context.js';
import { listAuditEvents } from '../../db/repositories/audit-events.js';
import * as svc from '../../services/capsules.js';
import { capsuleVolumeMounts, volumeMountsOfCapsules } from '../../services/volumes.js';
import { teamOf } from '../auth.js';
import { STDIN_BODY_LIMIT } from '../edge.js';
import { idempotencyKeyOf } from '../idempotency-key.js';

import { abortOnDisconnect } from './disconnect.js';
import {
  CapsuleIdParams,
  type CapsuleJson,
  CapsuleListSchema,
  CapsuleSchema,
  CreateCapsuleBody,
  capsuleJson,
  EventSchema,
  ExecBody,
  ExecResultSchema,
  errors,
  eventJson,
  ListCapsulesQuery,
  MetricsSchema,
  PageQuery,
  PauseBody,
  ResumeBody,
  TimeoutBody,
} from './schemas.js';

/** The native JSON's egress fields (snake_case) as the contract's policy: the same keys in camelCase. */
const egressPolicyOf = (n: UpdateNetworkBodyJson): EgressPolicy => camelKeys(n);

/** A create's `network`: the egress policy plus who may reach the capsule's ports and the Host they see. */
const createNetworkOf = (n: CreateNetworkJson): svc.CreateCapsuleInput['network'] => camelKeys(n);

const networkJson = (p: svc.CapsuleEgressPolicy): CapsuleNetworkJson => ({
  allow_out: p.allowOut,
  deny_out: p.denyOut,
  rules: p.rules,
});

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Text for JSON, plus the exact bytes in base64 when they are not valid UTF-8. */
export function textOrBase64(buf: Buffer): { text: string; base64?: string } {
  try {
    return { text: utf8.decode(buf) };
  } catch {
    return { text: buf.toString('utf8'), base64: buf.toString('base64') };
  }
}

/** Metadata filters from `metadata=k:v` (repeatable) and `metadata.k=v`. */
export function metadataFilter(query: Record<string, unknown>): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  const pairs = query.metadata === undefined ? [] : Array.isArray(query.metadata) ? query.metadata : [query.metadata];
  for (const p of pairs as string[]) {
    const i = p.indexOf(':');
    if (i <= 0) throw new InvalidArgumentError(`querystring/metadata must be key:value, got '${p}'`);
    out[p.slice(0, i)] = p.slice(i + 1);
  }
  for (const [k, v] of Object.entries(query)) {
    if (!k.startsWith('metadata.')) continue;
    const key = k.slice('metadata.'.length);
    if (!key) throw new InvalidArgumentError('querystring/metadata. needs a key: metadata.<key>=<value>');
    out[key] = Array.isArray(v) ? String(v[v.length - 1]) : String(v);
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** Query keys other than these are refused, so a typo does not silently list everything. */
const LIST_KEYS = new Set(['state', 'template', 'metadata', 'limit', 'cursor', 'api_key']);

/** Capsule JSON with the volumes the capsule mounts. */
export async function capsuleJsonOf(ctx: ControlPlaneContext, c: svc.Capsule): Promise<CapsuleJson> {
  const mounts = await capsuleVolumeMounts(ctx.database.db, c.id);
  return capsuleJson(
    c,
    mounts.map((m) => ({ name: m.name, path: m.path })),
  );
}

export const capsuleRoutes =
  (ctx: ControlPlaneContext): FastifyPluginAsyncTypebox =>
  async (app) => {
    const tags = ['capsules'];

    app.post(
      '/capsules',
      {
        schema: {
          tags,
          summary: 'Create a capsule',
          body: CreateCapsuleBody,
          response: { 201: CapsuleSchema, ...errors(400, 401, 403, 404, 409, 503) },
        },
      },
      async (req, reply) => {
        const b = req.body;
        const { env, network, ...fields } = b;
        const c = await svc.createCapsuleOnce(
          ctx,
          teamOf(req).id,
          {
            // The body's fields in camelCase are the service's input, but for env (envs) and network.
            ...camelKeys(withoutPlainFields(fields)),
            ...(env !== undefined ? { envs: env } : {}),
            ...(network !== undefined ? { network: createNetworkOf(network) } : {}),
            plainFields: pickPlainFields(b),
          },
          idempotencyKeyOf(req),
        );
        return reply.status(201).send(await capsuleJsonOf(ctx, c));
      },
    );

    app.get(
      '/capsules',
      {
        schema: {
          tags,
          summary: 'List capsules (newest first)',
          querystring: ListCapsulesQuery,
          response: { 200: CapsuleListSchema, ...errors(400, 401) },
        },
      },
      async (req) => {
        const q = req.query as Record<string, unknown>;
        for (const k of Object.keys(q)) {
          if (!LIST_KEYS.has(k) && !k.startsWith('metadata.')) {
            throw new InvalidArgumentError(
              `querystring/${k} is not a filter; use state, template, metadata (key:value), metadata.<key>, limit or cursor`,
            );
          }
        }
        const states = req.query.state
          ?.split(',')
          .map((s) => s.trim())
          .filter(Boolean) as svc.CapsuleState[] | undefined;
        const metadata = metadataFilter(q);
        const page = await svc.listCapsules(ctx, teamOf(req).id, {
          ...(states ? { state: states } : {}),
          ...(metadata ? { metadata } : {}),
          ...(req.query.template ? { template: req.query.template } : {}),
          ...(req.query.limit !== undefined ? { limit: req.query.limit } : {}),
          ...(req.query.cursor ? { cursor: req.query.cursor } : {}),
        });
        const mounts = await volumeMountsOfCapsules(
          ctx.database.db,
          page.items.map((c) => c.id),
        );
        return {
          capsules: page.items.map((c) => capsuleJson(c, mounts.get(c.id) ?? [])),
          next_cursor: page.nextCursor,
        };
      },
    );

    app.get(
      '/capsules/:id',
      {
        schema: {
          tags,
          summary: 'Get a capsule',
          params: CapsuleIdParams,
          response: { 200: CapsuleSchema, ...errors(401, 404) },
        },
      },
      async (req) => capsuleJsonOf(ctx, await svc.getCapsule(ctx, teamOf(req).id, req.params.id)),
    );

    app.delete(
      '/capsules/:id',
      {
        schema: {
          tags,
          summary: 'Destroy a capsule',
          params: CapsuleIdParams,
          response: { 204: Type.Null(), ...errors(401, 404, 503) },
        },
      },
      async (req, reply) => {
        await svc.destroyCapsule(ctx, teamOf(req).id, req.params.id);
        return reply.status(204).send(null);
      },
    );

    app.post(
      '/capsules/:id/pause',
      {
        schema: {
          tags,
          summary: 'Pause a running capsule',
          params: CapsuleIdParams,
          body: Type.Optional(PauseBody),
          response: { 200: CapsuleSchema, ...errors(400, 401, 404, 409) },
        },
      },
      async (req) => capsuleJsonOf(ctx, await svc.pauseCapsule(ctx, teamOf(req).id, req.params.id, req.body?.mode)),
    );

    app.post(
      '/capsules/:id/resume',
      {
        schema: {
          tags,
          summary: 'Resume a paused or hibernated capsule',
          params: CapsuleIdParams,
          body: Type.Optional(ResumeBody),
          response: { 200: CapsuleSchema, ...errors(400, 401, 404, 409) },
        },
      },
      async (req) =>
        capsuleJsonOf(
          ctx,
          await svc.resumeCapsule(
            ctx,
            teamOf(req).id,
            req.params.id,
            req.body?.timeout_sec !== undefined ? { timeoutSec: req.body.timeout_sec } : {},
          ),
        ),
    );

    app.post(
      '/capsules/:id/ping',
      {
        schema: {
          tags,
          summary: 'Restart the timeout clock',
          params: CapsuleIdParams,
          response: { 200: CapsuleSchema, ...errors(401, 404, 409) },
        },
      },
      async (req) => capsuleJsonOf(ctx, await svc.pingCapsule(ctx, teamOf(req).id, req.params.id)),
    );

    app.post(
      '/capsules/:id/timeout',
      {
        schema: {
          tags,
          summary: 'Set the timeout (seconds from now; 0 = never)',
          params: CapsuleIdParams,
          body: TimeoutBody,
          response: { 200: CapsuleSchema, ...errors(400, 401, 404, 409) },
        },
      },
      async (req) =>
        capsuleJsonOf(ctx, await svc.setCapsuleTimeout(ctx, teamOf(req).id, req.params.id, req.body.timeout_sec)),
    );

    app.get(
      '/capsules/:id/network',
      {
        schema: {
          tags,
          summary: 'The egress policy (allow_out, deny_out, rules)',
          params: CapsuleIdParams,
          response: { 200: CapsuleNetworkSchema, ...errors(401, 404, 409) },
        },
      },
      async (req) => networkJson(await svc.getCapsuleNetwork(ctx, teamOf(req).id, req.params.id)),
    );

    app.put(
      '/capsules/:id/network',
      {
        schema: {
          tags,
          summary: 'Replace the egress policy (an omitted field clears it); new connections follow it at once',
          params: CapsuleIdParams,
          body: UpdateNetworkBody,
          response: { 200: CapsuleNetworkSchema, ...errors(400, 401, 404, 409) },
        },
      },
      async (req) =>
        networkJson(await svc.updateCapsuleNetwork(ctx, teamOf(req).id, req.params.id, egressPolicyOf(req.body))),
    );

    app.post(
      '/capsules/:id/exec',
      {
        bodyLimit: STDIN_BODY_LIMIT,
        schema: {
          tags,
          summary: 'Run a command to completion',
          description:
            'Without args, cmd is a shell command line run by /bin/sh -c. Output that is not valid UTF-8 is also returned exactly in stdout_base64/stderr_base64.',
          params: CapsuleIdParams,
          body: ExecBody,
          response: { 200: ExecResultSchema, ...errors(400, 401, 404, 409) },
        },
      },
      async (req) => {
        const b = req.body;
        let stdin: Buffer | undefined;
        if (b.stdin_base64 !== undefined) {
          if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b.stdin_base64))
            throw new InvalidArgumentError('body/stdin_base64 must be base64');
          stdin = Buffer.from(b.stdin_base64, 'base64');
        }
        const life = abortOnDisconnect(req);
        const r = await svc
          .execCommand(
            ctx,
            teamOf(req).id,
            req.params.id,
            {
              ...(b.args === undefined ? { cmd: '/bin/sh', args: ['-c', b.cmd] } : { cmd: b.cmd, args: b.args }),
              ...(b.env ? { envs: b.env } : {}),
              ...(b.cwd ? { cwd: b.cwd } : {}),
              ...(b.user ? { user: b.user } : {}),
              ...(stdin ? { stdin } : {}),
              ...(b.timeout_sec !== undefined ? { timeoutSec: b.timeout_sec } : {}),
            },
            life.signal,
          )
          .finally(() => life.done());
        const out = textOrBase64(r.stdout);
        const err = textOrBase64(r.stderr);
        return {
          stdout: out.text,
          stderr: err.text,
          exit_code: r.exitCode,
          ...(out.base64 !== undefined ? { stdout_base64: out.base64 } : {}),
          ...(err.base64 !== undefined ? { stderr_base64: err.base64 } : {}),
          ...(r.error ? { error: r.error } : {}),
        };
      },
    );

    app.get(
      '/capsules/:id/metrics',
      {
        schema: {
          tags,
          summary: 'CPU, memory, disk and process counts',
          params: CapsuleIdParams,
          response: { 200: MetricsSchema, ...errors(401, 404, 409) },
        },
      },
      async (req) => {
        const m = await svc.capsuleMetrics(ctx, teamOf(req).id, req.params.id);
        return {
          cpu_used_pct: m.cpuUsedPct,
          cpu_count: m.cpuCount,
          mem_used_bytes: m.memUsedBytes,
          mem_total_bytes: m.memTotalBytes,
          disk_used_bytes: m.diskUsedBytes,
          disk_total_bytes: m.diskTotalBytes,
          pids: m.pids,
          timestamp: m.timestamp.toISOString(),
        };
      },
    );

    app.get(
      '/capsules/:id/events',
      {
        schema: {
          tags,
          summary: "The capsule's audit log, oldest first",
          params: CapsuleIdParams,
          querystring: PageQuery,
          response: {
            200: Type.Object({
              events: Type.Array(EventSchema),
              next_cursor: Type.Union([Type.String(), Type.Null()]),
            }),
            ...errors(400, 401, 404),
          },
        },
      },
      async (req) => {
        const team = teamOf(req).id;
        const c = await svc.getCapsule(ctx, team, req.params.id);
        const page = await listAuditEvents(ctx.database.db, {
          capsuleId: c.id,
          teamId: team,
          ...(req.query.limit !== undefined ? { limit: req.query.limit } : {}),
          ...(req.query.cursor ? { cursor: req.query.cursor } : {}),
        });
        return { events: page.items.map(eventJson), next_cursor: page.nextCursor };
      },
    );
  };
