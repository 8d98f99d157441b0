// E2B sandbox routes over the capsule service layer.

import { Type } from '@sinclair/typebox';
import { CAPSULE_DEFAULTS, ConflictError, InvalidArgumentError, NotFoundError } from '@wrenn/protocol';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ControlPlaneContext } from '../../context.js';
import { listAuditEvents } from '../../db/repositories/audit-events.js';
import {
  type Capsule,
  type CapsuleState,
  type CreateCapsuleInput,
  capsuleMetrics,
  capsuleMetricsHistory,
  createCapsuleOnce,
  destroyCapsule,
  getCapsule,
  listCapsules,
  pauseCapsule,
  pingCapsule,
  resumeCapsule,
  setCapsuleTimeout,
  type TimeoutAction,
} from '../../services/capsules.js';
import { templateOfRef } from '../../services/template-refs.js';
import { capsuleVolumeMounts, volumeMountsOfCapsules } from '../../services/volumes.js';
import { idempotencyKeyOf } from '../idempotency-key.js';
import { e2bTeam } from './auth.js';
import {
  E2B_STATES,
  parseMetadataQuery,
  toListedSandbox,
  toSandbox,
  toSandboxDetail,
  toSandboxMetric,
} from './mapping.js';
import { lastPerStep, metricsRange } from './metrics-range.js';
import { e2bEgressPolicy, e2bPublicTraffic } from './network.js';
import {
  ConnectBody,
  errorResponses,
  ListedSandbox,
  ListQuery,
  MetricsRangeQuery,
  NewSandbox,
  PauseBody,
  RefreshBody,
  ResumeBody,
  Sandbox,
  SandboxDetail,
  SandboxIdParams,
  SandboxLogs,
  SandboxMetric,
  TimeoutBody,
} from './schemas.js';

const tags = ['e2b'];
const MAX_LIST_SCAN = 10_000;

/** A capsule the E2B API can show: not destroyed, not failed (E2B has no such states: 404). */
export async function visibleCapsule(ctx: ControlPlaneContext, teamId: string, id: string): Promise<Capsule> {
  const c = await getCapsule(ctx, teamId, id);
  if (c.state === 'stopped') throw new NotFoundError(`sandbox ${id} not found`);
  if (c.state === 'error') throw new NotFoundError(`sandbox ${id} failed${c.error ? `: ${c.error}` : ''}`);
  return c;
}

function timeoutActionOf(body: NewSandbox): TimeoutAction {
  if (!body.autoPause) return 'kill';
  return body.autoPauseMemory === false ? 'hibernate' : 'pause';
}

/** Sorted, filtered listing with E2B's nextToken paging. */
async function listSandboxes(
  ctx: ControlPlaneContext,
  teamId: string,
  q: ListQuery,
  defaultStates: readonly ('running' | 'paused')[],
  reply: FastifyReply,
): Promise<ReturnType<typeof toListedSandbox>[]> {
  const given = q.state === undefined ? undefined : Array.isArray(q.state) ? q.state : [q.state];
  const wanted = given
    ? given
        .flatMap((v) => v.split(','))
        .map((s) => s.trim())
        .filter(Boolean)
    : [...defaultStates];
  const states: CapsuleState[] = [];
  for (const s of wanted) {
    if (s !== 'running' && s !== 'paused')
      throw new InvalidArgumentError(`state must be running or paused, got '${s}'`);
    states.push(...E2B_STATES[s]);
  }
  const metadata = parseMetadataQuery(q.metadata);
  const limit = q.limit ?? 100;
  const base = { state: states, ...(metadata ? { metadata } : {}), ...(q.template ? { template: q.template } : {}) };
  if (!q.startedAfter && q.order !== 'asc') {
    // Newest first straight from the database's keyset pages.
    const page = await listCapsules(ctx, teamId, { ...base, limit, ...(q.nextToken ? { cursor: q.nextToken } : {}) });
    if (page.nextCursor) void reply.header('x-next-token', page.nextCursor);
    return withVolumeMounts(ctx, page.items);
  }
  // Oldest first or a start-time filter: gather the team's matching capsules, then page by offset.
  const all: Capsule[] = [];
  let cursor: string | null = null;
  do {
    const page = await listCapsules(ctx, teamId, { ...base, limit: 1000, ...(cursor ? { cursor } : {}) });
    all.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor && all.length < MAX_LIST_SCAN);
  const after = q.startedAfter ? new Date(q.startedAfter).getTime() : undefined;
  const rows = all.filter((c) => after === undefined || c.createdAt.getTime() >= after);
  rows.sort(
    (a, b) =>
      (q.order === 'asc' ? 1 : -1) * (a.createdAt.getTime() - b.createdAt.getTime() || a.id.localeCompare(b.id)),
  );
  let offset = 0;
  if (q.nextToken) {
    const m = /^o(\d+)$/.exec(q.nextToken);
    if (!m)
      throw new InvalidArgumentError(
        'nextToken is not valid: pass back the X-Next-Token of the previous page unchanged',
      );
    offset = Number(m[1]);
  }
  const items = rows.slice(offset, offset + limit);
  if (offset + limit < rows.length) void reply.header('x-next-token', `o${offset + limit}`);
  return withVolumeMounts(ctx, items);
}

/** Listed sandboxes with the volumes each mounts (one query for the page). */
async function withVolumeMounts(
  ctx: ControlPlaneContext,
  items: Capsule[],
): Promise<ReturnType<typeof toListedSandbox>[]> {
  const mounts = await volumeMountsOfCapsules(
    ctx.database.db,
    items.map((c) => c.id),
  );
  return items.map((c) => ({ ...toListedSandbox(c), volumeMounts: mounts.get(c.id) ?? [] }));
}

export function sandboxRoutes(app: FastifyInstance, ctx: ControlPlaneContext): void {
  const create = async (body: NewSandbox, teamId: string, idempotencyKey: string | undefined) => {
    const egress = e2bEgressPolicy(body.network);
    const publicTraffic = e2bPublicTraffic(body.network);
    const network = egress || Object.keys(publicTraffic).length > 0 ? { ...egress, ...publicTraffic } : undefined;
    const c = await createCapsuleOnce(
      ctx,
      teamId,
      {
        template: await templateOfRef(ctx, teamId, body.templateID),
        timeoutSec: body.timeout ?? CAPSULE_DEFAULTS.timeoutSec,
        timeoutAction: timeoutActionOf(body),
        ...(body.envVars ? { envs: body.envVars } : {}),
        ...(body.metadata ? { metadata: body.metadata } : {}),
        ...(body.allow_internet_access !== undefined ? { internet: body.allow_internet_access } : {}),
        ...(network ? { network } : {}),
        ...(body.autoResume?.enabled ? { autoResume: true } : {}),
        ...(body.volumeMounts?.length ? { volumeMounts: body.volumeMounts } : {}),
        ...(body.mcp !== undefined ? { mcp: body.mcp as CreateCapsuleInput['mcp'] } : {}),
      },
      idempotencyKey,
    );
    return toSandbox(ctx, c);
  };
  for (const path of ['/sandboxes', '/v2/sandboxes']) {
    app.post(
      path,
      {
        schema: { tags, summary: 'Create a sandbox', body: NewSandbox, response: { 201: Sandbox, ...errorResponses } },
      },
      async (req, reply) => {
        const team = await e2bTeam(ctx, req);
        return reply.status(201).send(await create(req.body as NewSandbox, team.id, idempotencyKeyOf(req)));
      },
    );
  }

  app.get(
    '/sandboxes',
    {
      schema: {
        tags,
        summary: 'List running sandboxes (v1)',
        querystring: Type.Object({ metadata: Type.Optional(Type.String({ maxLength: 8192 })) }),
        response: { 200: Type.Array(ListedSandbox), ...errorResponses },
      },
    },
    async (req, reply) => {
      const team = await e2bTeam(ctx, req);
      const q = req.query as { metadata?: string };
      // v1 has no paging: every running sandbox.
      return listSandboxes(
        ctx,
        team.id,
        { ...(q.metadata ? { metadata: q.metadata } : {}), order: 'desc', startedAfter: new Date(0).toISOString() },
        ['running'],
        reply,
      );
    },
  );

  app.get(
    '/v2/sandboxes',
    {
      schema: {
        tags,
        summary: 'List sandboxes',
        querystring: ListQuery,
        response: { 200: Type.Array(ListedSandbox), ...errorResponses },
      },
    },
    async (req, reply) => {
      const team = await e2bTeam(ctx, req);
      return listSandboxes(ctx, team.id, req.query as ListQuery, ['running', 'paused'], reply);
    },
  );

  app.get(
    '/sandboxes/metrics',
    {
      schema: {
        tags,
        summary: 'Current metrics of several sandboxes',
        querystring: Type.Object({ sandbox_ids: Type.String({ minLength: 1, maxLength: 8192 }) }),
        response: { 200: Type.Object({ sandboxes: Type.Record(Type.String(), SandboxMetric) }), ...errorResponses },
      },
    },
    async (req) => {
      const team = await e2bTeam(ctx, req);
      const ids = [
        ...new Set(
          (req.query as { sandbox_ids: string }).sandbox_ids
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean),
        ),
      ];
      if (ids.length > 100) throw new InvalidArgumentError('sandbox_ids takes at most 100 ids');
      const sandboxes: Record<string, ReturnType<typeof toSandboxMetric>> = {};
      await Promise.all(
        ids.map(async (id) => {
          const c = await getCapsule(ctx, team.id, id).catch(() => null);
          if (!c || (c.state !== 'running' && c.state !== 'paused')) return;
          const m = await capsuleMetrics(ctx, team.id, id).catch(() => null);
          if (m) sandboxes[id] = toSandboxMetric(m);
        }),
      );
      return { sandboxes };
    },
  );

  app.get(
    '/sandboxes/:sandboxID',
    {
      schema: {
        tags,
        summary: 'Get a sandbox',
        params: SandboxIdParams,
        response: { 200: SandboxDetail, ...errorResponses },
      },
    },
    async (req) => {
      const team = await e2bTeam(ctx, req);
      const c = await visibleCapsule(ctx, team.id, (req.params as SandboxIdParams).sandboxID);
      const mounts = await capsuleVolumeMounts(ctx.database.db, c.id);
      return { ...toSandboxDetail(ctx, c), volumeMounts: mounts.map((m) => ({ name: m.name, path: m.path })) };
    },
  );

  app.delete(
    '/sandboxes/:sandboxID',
    {
      schema: {
        tags,
        summary: 'Kill a sandbox',
        params: SandboxIdParams,
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (req, reply) => {
      const team = await e2bTeam(ctx, req);
      await destroyCapsule(ctx, team.id, (req.params as SandboxIdParams).sandboxID);
      return reply.status(204).send();
    },
  );

  app.get(
    '/sandboxes/:sandboxID/metrics',
    {
      schema: {
        tags,
        summary: 'Sandbox metrics (the current sample)',
        params: SandboxIdParams,
        querystring: MetricsRangeQuery,
        response: { 200: Type.Array(SandboxMetric), ...errorResponses },
      },
    },
    async (req) => {
      const team = await e2bTeam(ctx, req);
      const c = await visibleCapsule(ctx, team.id, (req.params as SandboxIdParams).sandboxID);
      // As E2B: from the sandbox's start to now unless asked otherwise.
      const { start, end } = metricsRange(req.query as MetricsRangeQuery, { start: c.createdAt, end: new Date() });
      if (c.state === 'starting') return [];
      const samples = await capsuleMetricsHistory(ctx, team.id, c.id, start, end);
      // A range open to now ends with a sample taken now (the agent's come every 5 s).
      const openEnded = (req.query as MetricsRangeQuery).end === undefined;
      if (c.state === 'running' || c.state === 'paused') {
        const live = await capsuleMetrics(ctx, team.id, c.id).catch(() => null);
        const t = live?.timestamp.getTime() ?? 0;
        if (live && t >= start.getTime() && (openEnded || t <= end.getTime())) samples.push(live);
      }
      const last = Math.max(end.getTime(), samples.at(-1)?.timestamp.getTime() ?? 0);
      return lastPerStep(samples, (m) => m.timestamp.getTime(), start.getTime(), last).map(toSandboxMetric);
    },
  );

  app.post(
    '/sandboxes/:sandboxID/pause',
    {
      schema: {
        tags,
        summary: 'Pause a sandbox',
        params: SandboxIdParams,
        body: Type.Optional(PauseBody),
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (req, reply) => {
      const team = await e2bTeam(ctx, req);
      const id = (req.params as SandboxIdParams).sandboxID;
      const c = await visibleCapsule(ctx, team.id, id);
      if (c.state === 'paused' || c.state === 'hibernated') throw new ConflictError(`sandbox ${id} is already paused`);
      const memory = (req.body as { memory?: boolean } | undefined)?.memory;
      await pauseCapsule(ctx, team.id, id, memory === false ? 'hibernate' : undefined);
      return reply.status(204).send();
    },
  );

  app.post(
    '/sandboxes/:sandboxID/resume',
    {
      schema: {
        tags,
        summary: 'Resume a paused sandbox (deprecated by E2B: use connect)',
        params: SandboxIdParams,
        body: Type.Optional(ResumeBody),
        response: { 201: Sandbox, ...errorResponses },
      },
    },
    async (req, reply) => {
      const team = await e2bTeam(ctx, req);
      const id = (req.params as SandboxIdParams).sandboxID;
      const c = await visibleCapsule(ctx, team.id, id);
      if (c.state === 'running' || c.state === 'starting') throw new ConflictError(`sandbox ${id} is already running`);
      const timeout = (req.body as { timeout?: number } | undefined)?.timeout;
      const r = await resumeCapsule(ctx, team.id, id, timeout ? { timeoutSec: timeout } : {});
      return reply.status(201).send(toSandbox(ctx, r));
    },
  );

  for (const path of ['/sandboxes/:sandboxID/connect', '/v2/sandboxes/:sandboxID/connect']) {
    app.post(
      path,
      {
        schema: {
          tags,
          summary: 'Connect to a sandbox, resuming it if paused; the timeout is only ever extended',
          params: SandboxIdParams,
          body: Type.Optional(ConnectBody),
          response: { 200: Sandbox, 201: Sandbox, ...errorResponses },
        },
      },
      async (req, reply) => {
        const team = await e2bTeam(ctx, req);
        const id = (req.params as SandboxIdParams).sandboxID;
        const timeout = (req.body as { timeout?: number } | undefined)?.timeout;
        const c = await visibleCapsule(ctx, team.id, id);
        if (c.state === 'paused' || c.state === 'hibernated') {
          const r = await resumeCapsule(ctx, team.id, id, timeout ? { timeoutSec: timeout } : {});
          return reply.status(201).send(toSandbox(ctx, r));
        }
        if (c.state === 'starting')
          throw new ConflictError(`sandbox ${id} is still starting; connect again in a moment`);
        let current = c;
        if (timeout && (c.expiresAt === null ? false : c.expiresAt.getTime() < Date.now() + timeout * 1000)) {
          current = await setCapsuleTimeout(ctx, team.id, id, timeout);
        }
        return reply.status(200).send(toSandbox(ctx, current));
      },
    );
  }

  app.post(
    '/sandboxes/:sandboxID/timeout',
    {
      schema: {
        tags,
        summary: 'Set the timeout, from now',
        params: SandboxIdParams,
        body: TimeoutBody,
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (req, reply) => {
      const team = await e2bTeam(ctx, req);
      const id = (req.params as SandboxIdParams).sandboxID;
      await visibleCapsule(ctx, team.id, id);
      await setCapsuleTimeout(ctx, team.id, id, (req.body as { timeout: number }).timeout);
      return reply.status(204).send();
    },
  );

  app.post(
    '/sandboxes/:sandboxID/refreshes',
    {
      schema: {
        tags,
        summary: 'Keep a sandbox alive',
        params: SandboxIdParams,
        body: Type.Optional(RefreshBody),
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (req, reply) => {
      const team = await e2bTeam(ctx, req);
      const id = (req.params as SandboxIdParams).sandboxID;
      const c = await visibleCapsule(ctx, team.id, id);
      const duration = (req.body as { duration?: number } | undefined)?.duration;
      // Extends, never shortens: a refresh for less than what is left only restarts the clock.
      if (
        duration &&
        c.expiresAt !== null &&
        c.expiresAt.getTime() < Date.now() + duration * 1000 &&
        duration > c.timeoutSec
      ) {
        await setCapsuleTimeout(ctx, team.id, id, duration);
      } else {
        await pingCapsule(ctx, team.id, id);
      }
      return reply.status(204).send();
    },
  );

  const logs = async (teamId: string, id: string, limit: number) => {
    await getCapsule(ctx, teamId, id);
    const page = await listAuditEvents(ctx.database.db, {
      capsuleId: id,
      teamId,
      limit: Math.min(Math.max(limit, 1), 1000),
    });
    return page.items.map((e) => ({
      timestamp: e.createdAt.toISOString(),
      message: `${e.kind}${Object.keys(e.data).length ? ` ${JSON.stringify(e.data)}` : ''}`,
      level: e.kind.endsWith('error') || e.kind.includes('lost') || e.kind.includes('unreachable') ? 'error' : 'info',
      fields: Object.fromEntries([
        ['kind', e.kind],
        ...Object.entries(e.data).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]),
      ]) as Record<string, string>,
    }));
  };
  app.get(
    '/sandboxes/:sandboxID/logs',
    {
      schema: {
        tags,
        summary: 'Sandbox lifecycle log',
        params: SandboxIdParams,
        querystring: Type.Object({
          start: Type.Optional(Type.Integer({ minimum: 0 })),
          limit: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000 })),
        }),
        response: { 200: SandboxLogs, ...errorResponses },
      },
    },
    async (req) => {
      const team = await e2bTeam(ctx, req);
      const q = req.query as { start?: number; limit?: number };
      const entries = (await logs(team.id, (req.params as SandboxIdParams).sandboxID, q.limit ?? 1000)).filter(
        (e) => !q.start || Date.parse(e.timestamp) >= q.start,
      );
      return { logs: entries.map((e) => ({ timestamp: e.timestamp, line: e.message })), logEntries: entries };
    },
  );
  app.get(
    '/v2/sandboxes/:sandboxID/logs',
    {
      schema: {
        tags,
        summary: 'Sandbox lifecycle log (v2)',
        params: SandboxIdParams,
        querystring: Type.Object({
          cursor: Type.Optional(Type.Integer({ minimum: 0 })),
          limit: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000 })),
          direction: Type.Optional(Type.String()),
          level: Type.Optional(Type.String()),
          search: Type.Optional(Type.String({ maxLength: 256 })),
        }),
        response: { 200: Type.Object({ logs: SandboxLogs.properties.logEntries }), ...errorResponses },
      },
    },
    async (req) => {
      const team = await e2bTeam(ctx, req);
      const q = req.query as { cursor?: number; limit?: number; direction?: string; search?: string };
      let entries = (await logs(team.id, (req.params as SandboxIdParams).sandboxID, 1000)).filter(
        (e) => (!q.cursor || Date.parse(e.timestamp) >= q.cursor) && (!q.search || e.message.includes(q.search)),
      );
      if (q.direction === 'backward') entries = entries.reverse();
      return { logs: entries.slice(0, q.limit ?? 1000) };
    },
  );
}
