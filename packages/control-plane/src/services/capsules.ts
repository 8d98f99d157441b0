// Capsule operations shared by the native (/v1) and E2B-compatible APIs. Every function is scoped
// to a team (another team's capsule is "not found"), keeps the database true and calls the host
// agent; every state change drops the proxy's cached route. Failures are thrown as domain errors
// (@wrenn/protocol; the agent client turns the agent's Connect codes into them too), so each API
// only has to render them in its own error shape.
import { randomBytes } from 'node:crypto';
import { parseCidr } from '@wrenn/host-agent/client';
import {
  asDomainError,
  CAPSULE_DEFAULTS,
  type CapsuleRequest,
  ConflictError,
  capsuleRequestProblem,
  commandTimeoutProblem,
  DEFAULT_TIMEOUT_ACTION,
  DeadlineExceededError,
  DomainError,
  envsProblem,
  HostFullError,
  InternalError,
  InvalidArgumentError,
  LIVE_CAPSULE_STATES,
  messageOf,
  metadataProblem,
  NotFoundError,
  type PauseMode,
  ResourceExhaustedError,
  timeoutProblem,
  UnavailableError,
} from '@wrenn/protocol';
import {
  type Capsule as PbCapsule,
  PauseMode as PbPauseMode,
  CapsuleState as PbState,
  TimeoutAction as PbTimeoutAction,
} from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import type { AgentClient } from '../agents/pool.js';
import type { ControlPlaneContext } from '../context.js';
import type { Page } from '../db/pagination.js';
import { appendAuditEvent } from '../db/repositories/audit-events.js';
import {
  CAPSULE_STATES,
  type Capsule,
  type CapsuleState,
  getCapsule as getCapsuleRow,
  createCapsule as insertCapsule,
  setCapsuleState,
  TIMEOUT_ACTIONS,
  type TimeoutAction,
  updateCapsule,
} from '../db/repositories/capsules.js';
import { listCapsulesWithTemplate } from '../db/repositories/capsules-extra.js';
import { getHost, type Host, listHosts, setHostCapacity } from '../db/repositories/hosts.js';
import { isCapsuleId, newCapsuleId } from '../ids.js';
import { NoHostError, pickHost } from '../scheduler/least-loaded.js';
import {
  mergeTemplateEnvs,
  startTemplateProcesses,
  type TemplateConfig,
  templateConfigFor,
} from './template-config.js';
import { agentTemplateName, DEFAULT_TEMPLATE, resolveTemplate } from './templates.js';

export type { PauseMode } from '@wrenn/protocol';
export type { AgentClient } from '../agents/pool.js';
export type { Page } from '../db/pagination.js';
export type { Capsule, CapsuleState, TimeoutAction } from '../db/repositories/capsules.js';

/** States in which a capsule still exists somewhere (on its host's disk at least). */
export const LIVE_STATES = LIVE_CAPSULE_STATES;

export interface CreateCapsuleInput extends CapsuleRequest {
  /** What happens at the timeout; default 'kill'. */
  timeoutAction?: TimeoutAction;
  /** Free-form id of the caller (the E2B API stores its clientID here). */
  clientId?: string;
  /** Skip a built template's start command and ready check (template builds set this). */
  skipTemplateStart?: boolean;
}

export interface ListCapsulesInput {
  state?: CapsuleState | readonly CapsuleState[];
  metadata?: Record<string, string>;
  template?: string;
  limit?: number;
  cursor?: string | null;
}

export interface ExecInput {
  cmd: string;
  args?: string[];
  envs?: Record<string, string>;
  cwd?: string;
  user?: string;
  stdin?: Uint8Array;
  timeoutSec?: number;
  tag?: string;
}

export interface ExecResult {
  stdout: Buffer;
  stderr: Buffer;
  exitCode: number;
  /** Set when the process ended abnormally (signal, timeout), in the agent's words. */
  error: string;
  pid: number;
}

export interface CapsuleMetrics {
  cpuUsedPct: number;
  cpuCount: number;
  memUsedBytes: number;
  memTotalBytes: number;
  diskUsedBytes: number;
  diskTotalBytes: number;
  pids: number;
  timestamp: Date;
}

// ---------------------------------------------------------------------------------------------
// Validation: the contract's rules (@wrenn/protocol) as InvalidArgument. Both APIs create through here.

const refuse = (problem: string | undefined): void => {
  if (problem) throw new InvalidArgumentError(problem);
};

export function validateEnvs(envs: unknown, field = 'env'): Record<string, string> {
  refuse(envsProblem(envs, field));
  return (envs ?? {}) as Record<string, string>;
}

/** A command's own timeout (exec and the streamed command protocols). */
export const validateCommandTimeout = (value: unknown): void => refuse(commandTimeoutProblem(value));

export function validateMetadata(metadata: unknown, field = 'metadata'): Record<string, string> {
  refuse(metadataProblem(metadata, field));
  return (metadata ?? {}) as Record<string, string>;
}

export function validateCreate(input: CreateCapsuleInput): void {
  if (input.timeoutAction !== undefined && !(TIMEOUT_ACTIONS as readonly string[]).includes(input.timeoutAction)) {
    throw new InvalidArgumentError(
      `timeout_action must be one of ${TIMEOUT_ACTIONS.join(', ')}, got '${input.timeoutAction}'`,
    );
  }
  refuse(capsuleRequestProblem(input));
  validateAllowOut(input.network?.allowOut);
}

/** The syntax of network.allow_out; which private ranges may be named is the host agent's to say (also a 400). */
function validateAllowOut(list: string[] = []): void {
  for (const entry of list) {
    try {
      parseCidr(entry);
    } catch (err) {
      throw new InvalidArgumentError(`network.allow_out: ${(err as Error).message}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

const FROM_PB: Record<PbState, CapsuleState> = {
  [PbState.UNSPECIFIED]: 'error',
  [PbState.STARTING]: 'starting',
  [PbState.RUNNING]: 'running',
  [PbState.PAUSED]: 'paused',
  [PbState.HIBERNATED]: 'hibernated',
  [PbState.STOPPED]: 'stopped',
  [PbState.ERROR]: 'error',
};

export const stateFromAgent = (s: PbState): CapsuleState => FROM_PB[s] ?? 'error';

const expiresFromAgent = (c: PbCapsule | undefined): Date | null =>
  c && c.expiresAt > 0n ? new Date(Number(c.expiresAt)) : null;

const newEnvdAccessToken = (): string => randomBytes(24).toString('base64url');

async function audit(
  ctx: ControlPlaneContext,
  teamId: string,
  capsuleId: string | null,
  kind: string,
  data: Record<string, unknown> = {},
): Promise<void> {
  try {
    await appendAuditEvent(ctx.database.db, { teamId, capsuleId, kind, data });
  } catch (err) {
    // The operation itself succeeded; a lost audit line must not turn it into an error.
    ctx.log.warn({ err, capsuleId, kind }, 'could not write audit event');
  }
}

/** Exported for other services (snapshots): appends an audit event, never throws. */
export const recordEvent = audit;

function illegalState(c: Capsule, action: string): ConflictError {
  let hint = '';
  if ((c.state === 'paused' || c.state === 'hibernated') && action !== 'resume') hint = '; resume it first';
  else if (c.state === 'running' && action === 'resume') hint = '; it is already running';
  else if (c.state === 'starting') hint = '; wait until it is running';
  else if (c.state === 'stopped') hint = '; it was destroyed, create a new one';
  else if (c.state === 'error') hint = `; it failed${c.error ? ` (${c.error})` : ''}, destroy it and create a new one`;
  return new ConflictError(`capsule ${c.id} is ${c.state}; cannot ${action} it${hint}`);
}

// ---------------------------------------------------------------------------------------------
// Reading

/** The team's capsule (any state, including stopped); 404 for unknown ids and other teams' capsules. */
export async function getCapsule(ctx: ControlPlaneContext, teamId: string, id: string): Promise<Capsule> {
  if (!isCapsuleId(id)) throw new NotFoundError(`capsule ${id} not found`);
  const c = await getCapsuleRow(ctx.database.db, id, teamId);
  if (!c) throw new NotFoundError(`capsule ${id} not found`);
  return c;
}

/** The team's capsule, which must be in one of `states` (409 otherwise, naming what to do). */
export async function requireCapsuleState(
  ctx: ControlPlaneContext,
  teamId: string,
  id: string,
  states: readonly CapsuleState[],
  action: string,
): Promise<Capsule> {
  const c = await getCapsule(ctx, teamId, id);
  if (!states.includes(c.state)) throw illegalState(c, action);
  return c;
}

/** Newest first; `nextCursor` continues the listing. Stopped capsules are listed only when asked for by state. */
export async function listCapsules(
  ctx: ControlPlaneContext,
  teamId: string,
  input: ListCapsulesInput = {},
): Promise<Page<Capsule>> {
  if (input.state !== undefined) {
    for (const s of typeof input.state === 'string' ? [input.state] : input.state) {
      if (!(CAPSULE_STATES as readonly string[]).includes(s))
        throw new InvalidArgumentError(`state must be one of ${CAPSULE_STATES.join(', ')}, got '${s}'`);
    }
  }
  const state = input.state ?? CAPSULE_STATES.filter((s) => s !== 'stopped');
  return listCapsulesWithTemplate(ctx.database.db, {
    teamId,
    state,
    ...(input.metadata ? { metadata: input.metadata } : {}),
    ...(input.template ? { template: input.template } : {}),
    ...(input.limit !== undefined ? { limit: input.limit } : {}),
    ...(input.cursor ? { cursor: input.cursor } : {}),
  });
}

/** The host a capsule is placed on; 503 when the host record is gone. */
export async function hostOfCapsule(ctx: ControlPlaneContext, c: Capsule): Promise<Host> {
  const host = c.hostId ? await getHost(ctx.database.db, c.hostId) : null;
  if (!host)
    throw new UnavailableError(`capsule ${c.id} is on host ${c.hostId ?? '(none)'}, which is not registered any more`);
  return host;
}

/** The Connect client of the agent holding the capsule. */
export async function agentForCapsule(ctx: ControlPlaneContext, c: Capsule): Promise<AgentClient> {
  const host = await hostOfCapsule(ctx, c);
  return ctx.agents.client(host);
}

/**
 * The team's capsule (in one of `states`, default running) and its agent client: what the APIs use
 * for streams (exec, PTY, files, processes) that they carry themselves.
 */
export async function capsuleAgent(
  ctx: ControlPlaneContext,
  teamId: string,
  id: string,
  states: readonly CapsuleState[] = ['running'],
  action = 'use',
): Promise<{ capsule: Capsule; agent: AgentClient }> {
  const capsule = await requireCapsuleState(ctx, teamId, id, states, action);
  return { capsule, agent: await agentForCapsule(ctx, capsule) };
}

// ---------------------------------------------------------------------------------------------
// Lifecycle

/**
 * Creates a capsule: validates, resolves the template, places it on the least-loaded host,
 * records it as starting, asks the agent to start it and records running (or error, after asking
 * the agent to remove whatever it made). Resolves once the capsule runs.
 */
export async function createCapsule(
  ctx: ControlPlaneContext,
  teamId: string,
  input: CreateCapsuleInput = {},
): Promise<Capsule> {
  validateCreate(input);
  const db = ctx.database.db;
  const template = await resolveTemplate(ctx, teamId, input.template ?? DEFAULT_TEMPLATE);
  // Snapshot templates fix the machine shape they were taken with.
  const fixedShape = template.kind === 'snapshot';
  const vcpus = fixedShape ? template.vcpus : (input.vcpus ?? CAPSULE_DEFAULTS.vcpus);
  const memoryMb = fixedShape ? template.memoryMb : (input.memoryMb ?? CAPSULE_DEFAULTS.memoryMb);
  const timeoutSec = input.timeoutSec ?? CAPSULE_DEFAULTS.timeoutSec;
  const timeoutAction = input.timeoutAction ?? DEFAULT_TIMEOUT_ACTION;
  const templateConfig = await templateConfigFor(ctx, template);
  const envs = mergeTemplateEnvs(templateConfig, validateEnvs(input.envs));
  const metadata = validateMetadata(input.metadata);

  // Hosts that refused this capsule for lack of room: the next placement skips them.
  const refusedBy = new Set<string>();
  const place = async () => {
    try {
      return await pickHost(db, {
        vcpus,
        memoryMb,
        ...(input.runtime ? { runtime: input.runtime } : {}),
        runtimes: template.runtimes,
        hostId: template.hostId,
        excludeHostIds: refusedBy,
      });
    } catch (err) {
      if (err instanceof NoHostError) throw await noHostError(ctx, input.runtime, template, err);
      throw err;
    }
  };
  let { host, runtime } = await place();
  const id = newCapsuleId();
  const envdAccessToken = newEnvdAccessToken();
  const now = Date.now();
  await insertCapsule(db, {
    id,
    teamId,
    hostId: host.id,
    template: template.name,
    runtime,
    vcpus,
    memoryMb,
    timeoutSec,
    timeoutAction,
    metadata,
    envs,
    envdAccessToken,
    clientId: input.clientId ?? null,
    internet: input.internet ?? CAPSULE_DEFAULTS.internet,
    autoResume: input.autoResume ?? false,
    state: 'starting',
    expiresAt: timeoutSec > 0 ? new Date(now + timeoutSec * 1000) : null,
  });

  let agent = ctx.agents.client(host);
  let made: PbCapsule | undefined;
  for (;;) {
    try {
      const res = await agent.createCapsule({
        id,
        template: agentTemplateName(template),
        vcpus,
        memoryMb,
        timeoutSec,
        // The agent applies the timeout itself; hibernating on timeout is the control plane's job.
        timeoutAction: timeoutAction === 'kill' ? PbTimeoutAction.DESTROY : PbTimeoutAction.PAUSE,
        envs,
        metadata,
        internet: input.internet ?? CAPSULE_DEFAULTS.internet,
        ...(input.network?.allowOut?.length ? { network: { allowOut: input.network.allowOut } } : {}),
        envdAccessToken,
        runtime,
        // The caller's default_user, else a Dockerfile template's USER (and its WORKDIR): the agent
        // applies them at every envd /init.
        defaultUser: input.defaultUser ?? templateConfig?.user.split(':')[0] ?? '',
        defaultWorkdir: templateConfig?.workdir ?? '',
      });
      made = res.capsule;
      break;
    } catch (err) {
      if (isCapacityRefusal(err)) {
        // The host is full (its agent refused before making anything): try another, else say so.
        const next = await placeElsewhere(ctx, id, host, err.message, refusedBy, place);
        ({ host, runtime } = next);
        agent = ctx.agents.client(host);
        continue;
      }
      const e = asDomainError(err);
      const message = messageOf(e);
      await setCapsuleState(db, id, 'error', { error: message, from: ['starting'] }).catch(() => null);
      // Whatever part of the capsule the agent made must go; it may have made nothing at all.
      await agent.destroyCapsule({ id }).catch(() => undefined);
      ctx.evictProxy(id);
      await audit(ctx, teamId, id, 'capsule.error', { during: 'create', message, host_id: host.id });
      throw e instanceof DomainError && e.kind !== 'internal'
        ? e
        : new InternalError(message, { code: 'capsule_start_failed', cause: err });
    }
  }

  const running = await setCapsuleState(db, id, 'running', {
    from: ['starting'],
    expiresAt: expiresFromAgent(made) ?? (timeoutSec > 0 ? new Date(Date.now() + timeoutSec * 1000) : null),
  });
  if (!running) {
    // Destroyed while it was starting: the agent must not keep it.
    await agent.destroyCapsule({ id }).catch(() => undefined);
    ctx.evictProxy(id);
    throw new ConflictError(`capsule ${id} was destroyed while it was starting`);
  }
  let result = running;
  if (made?.runtime && made.runtime !== runtime)
    result = (await updateCapsule(db, id, { runtime: made.runtime })) ?? running;
  ctx.evictProxy(id);
  // The SDK's first call goes through the proxy right away: it finds the capsule already known.
  ctx.primeProxy(id, {
    state: 'running',
    hostId: host.id,
    agentUrl: host.address,
    agentSecret: host.agentSecret,
    ...(ctx.localHostIds.has(host.id) && made?.address ? { capsuleAddress: made.address } : {}),
  });
  if (!input.skipTemplateStart) await startFromTemplateConfig(ctx, teamId, result, host, templateConfig);
  await audit(ctx, teamId, id, 'capsule.created', {
    template: template.name,
    host_id: host.id,
    runtime: result.runtime,
    vcpus,
    memory_mb: memoryMb,
    ms: Date.now() - now,
  });
  return result;
}

/** The agent refused a create because its host is full (HostCapacityError there), not because of the request. */
const isCapacityRefusal = (err: unknown): err is ResourceExhaustedError => err instanceof ResourceExhaustedError;

/**
 * A host refused the capsule for lack of room: remembers it as full (until its next heartbeat or a
 * destroy there says otherwise) and moves the capsule's row to the next host that may have room.
 * With none left the row is stopped with the reason (it never ran) and the caller gets a 503
 * `host_full` naming what is full: a client can retry later, nothing is wrong with its request.
 */
async function placeElsewhere(
  ctx: ControlPlaneContext,
  id: string,
  full: Host,
  reason: string,
  refusedBy: Set<string>,
  place: () => Promise<{ host: Host; runtime: string }>,
): Promise<{ host: Host; runtime: string }> {
  const db = ctx.database.db;
  refusedBy.add(full.id);
  await setHostCapacity(db, full.id, { room: 0, full: reason }).catch(() => undefined);
  let next: { host: Host; runtime: string } | undefined;
  try {
    next = await place();
  } catch {
    next = undefined;
  }
  if (next) {
    await updateCapsule(db, id, { hostId: next.host.id, runtime: next.runtime });
    return next;
  }
  const message =
    refusedBy.size > 1 ? `every host that could run this capsule is full; the last said: ${reason}` : reason;
  const row = await setCapsuleState(db, id, 'stopped', { error: `not created: ${message}`, from: ['starting'] }).catch(
    () => null,
  );
  ctx.evictProxy(id);
  if (row) await audit(ctx, row.teamId, id, 'capsule.refused', { message, host_ids: [...refusedBy] });
  throw new HostFullError(message);
}

/**
 * Why no host could take a capsule: asking for a runtime the template or every host of this
 * deployment lacks is the caller's mistake (400); hosts that are offline or full are not (503).
 */
async function noHostError(
  ctx: ControlPlaneContext,
  runtime: string | undefined,
  template: { name: string; runtimes: readonly string[] },
  err: NoHostError,
): Promise<DomainError> {
  if (runtime !== undefined) {
    if (template.runtimes.length > 0 && !template.runtimes.includes(runtime))
      return new InvalidArgumentError(
        `template '${template.name}' runs on ${template.runtimes.join(', ')}, not on runtime '${runtime}'`,
      );
    const offered = new Set((await listHosts(ctx.database.db)).flatMap((h) => h.runtimes));
    if (!offered.has(runtime))
      return new InvalidArgumentError(
        `no host of this deployment offers runtime '${runtime}' (hosts offer: ${[...offered].join(', ') || 'none'})`,
      );
  }
  return err.full ? new HostFullError(err.message) : new UnavailableError(err.message, { code: 'no_host_available' });
}

/**
 * A built template's start command and ready check (services/template-config.ts); a capsule whose
 * start fails or never gets ready is destroyed, so create either returns a ready capsule or fails.
 */
async function startFromTemplateConfig(
  ctx: ControlPlaneContext,
  teamId: string,
  capsule: Capsule,
  host: Host,
  config: TemplateConfig | null,
): Promise<void> {
  if (!config) return;
  try {
    await startTemplateProcesses({ capsuleId: capsule.id, agent: ctx.agents.client(host) }, config);
  } catch (err) {
    await destroyCapsule(ctx, teamId, capsule.id).catch(() => undefined);
    throw err;
  }
}

/** Destroys the capsule on its host and records it stopped. 404 if it is unknown or already destroyed. */
export async function destroyCapsule(ctx: ControlPlaneContext, teamId: string, id: string): Promise<Capsule> {
  const c = await getCapsule(ctx, teamId, id);
  if (c.state === 'stopped') throw new NotFoundError(`capsule ${id} was already destroyed`);
  const host = c.hostId ? await getHost(ctx.database.db, c.hostId) : null;
  if (host) {
    try {
      await ctx.agents.client(host).destroyCapsule({ id });
    } catch (err) {
      // Not on the agent (failed start, agent lost its state): nothing left to remove there.
      if (!(err instanceof NotFoundError)) throw err;
    }
    // A host that said it was full has room again now, not only at its next heartbeat.
    if (host.capacity?.full)
      await setHostCapacity(ctx.database.db, host.id, { room: 1, full: null }).catch(() => undefined);
  }
  const stopped = await setCapsuleState(ctx.database.db, id, 'stopped', {
    from: ['starting', 'running', 'paused', 'hibernated', 'error'],
    expiresAt: null,
  });
  ctx.evictProxy(id);
  if (!stopped) throw new NotFoundError(`capsule ${id} was already destroyed`);
  await audit(ctx, teamId, id, 'capsule.destroyed');
  return stopped;
}

/**
 * Pauses a running capsule. 'freeze' keeps memory and processes where the runtime can;
 * 'hibernate' keeps only the disk and frees memory. The result is paused or hibernated, as the
 * runtime managed.
 */
export async function pauseCapsule(
  ctx: ControlPlaneContext,
  teamId: string,
  id: string,
  mode?: PauseMode,
): Promise<Capsule> {
  if (mode !== undefined && mode !== 'freeze' && mode !== 'hibernate')
    throw new InvalidArgumentError(`mode must be freeze or hibernate, got '${String(mode)}'`);
  const c = await requireCapsuleState(ctx, teamId, id, ['running'], 'pause');
  const agent = await agentForCapsule(ctx, c);
  let res: Awaited<ReturnType<typeof agent.pauseCapsule>>;
  try {
    // No mode: the runtime's best (freezer for namespaces, a memory snapshot to disk for VMs).
    const pbMode =
      mode === 'hibernate' ? PbPauseMode.HIBERNATE : mode === 'freeze' ? PbPauseMode.FREEZE : PbPauseMode.UNSPECIFIED;
    res = await agent.pauseCapsule({ id, mode: pbMode });
  } finally {
    ctx.evictProxy(id);
  }
  const state = res.capsule ? stateFromAgent(res.capsule.state) : mode === 'hibernate' ? 'hibernated' : 'paused';
  const updated = await setCapsuleState(ctx.database.db, id, state, { from: ['running'] });
  if (!updated)
    throw new ConflictError(`capsule ${id} changed state while it was being paused; fetch it and try again`);
  await audit(ctx, teamId, id, 'capsule.paused', { mode, state, keeps: res.capsule?.pauseKeeps ?? '' });
  return updated;
}

/** Resumes a paused or hibernated capsule; `timeoutSec` (when set) replaces its timeout. */
export async function resumeCapsule(
  ctx: ControlPlaneContext,
  teamId: string,
  id: string,
  opts: { timeoutSec?: number } = {},
): Promise<Capsule> {
  refuse(timeoutProblem(opts.timeoutSec));
  const c = await requireCapsuleState(ctx, teamId, id, ['paused', 'hibernated'], 'resume');
  const agent = await agentForCapsule(ctx, c);
  let res: Awaited<ReturnType<typeof agent.resumeCapsule>>;
  try {
    res = await agent.resumeCapsule({ id, timeoutSec: opts.timeoutSec ?? 0 });
  } finally {
    ctx.evictProxy(id);
  }
  const timeoutSec = opts.timeoutSec || c.timeoutSec;
  const expiresAt = expiresFromAgent(res.capsule) ?? (timeoutSec > 0 ? new Date(Date.now() + timeoutSec * 1000) : null);
  const updated = await setCapsuleState(ctx.database.db, id, 'running', { from: ['paused', 'hibernated'], expiresAt });
  if (!updated)
    throw new ConflictError(`capsule ${id} changed state while it was being resumed; fetch it and try again`);
  const result = opts.timeoutSec
    ? ((await updateCapsule(ctx.database.db, id, { timeoutSec: opts.timeoutSec })) ?? updated)
    : updated;
  ctx.evictProxy(id);
  await audit(ctx, teamId, id, 'capsule.resumed', { from: c.state });
  return result;
}

/** Restarts the timeout clock of a running capsule (keep-alive). */
export async function pingCapsule(ctx: ControlPlaneContext, teamId: string, id: string): Promise<Capsule> {
  const c = await requireCapsuleState(ctx, teamId, id, ['running'], 'ping');
  const agent = await agentForCapsule(ctx, c);
  const res = await agent.pingCapsule({ id });
  const expiresAt =
    expiresFromAgent(res.capsule) ?? (c.timeoutSec > 0 ? new Date(Date.now() + c.timeoutSec * 1000) : null);
  return (await updateCapsule(ctx.database.db, id, { expiresAt })) ?? c;
}

/** Sets a running capsule's timeout to `timeoutSec` from now (0: never times out). */
export async function setCapsuleTimeout(
  ctx: ControlPlaneContext,
  teamId: string,
  id: string,
  timeoutSec: number,
): Promise<Capsule> {
  if (timeoutSec === undefined) throw new InvalidArgumentError('timeout_sec is required');
  refuse(timeoutProblem(timeoutSec));
  const c = await requireCapsuleState(ctx, teamId, id, ['running'], 'set the timeout of');
  const agent = await agentForCapsule(ctx, c);
  const res = await agent.pingCapsule({ id, timeoutSec });
  const expiresAt = expiresFromAgent(res.capsule) ?? (timeoutSec > 0 ? new Date(Date.now() + timeoutSec * 1000) : null);
  const updated = (await updateCapsule(ctx.database.db, id, { timeoutSec, expiresAt })) ?? c;
  await audit(ctx, teamId, id, 'capsule.timeout_set', { timeout_sec: timeoutSec });
  return updated;
}

/** CPU, memory, disk and process counts of a running or paused capsule. */
export async function capsuleMetrics(ctx: ControlPlaneContext, teamId: string, id: string): Promise<CapsuleMetrics> {
  const { agent } = await capsuleAgent(ctx, teamId, id, ['running', 'paused'], 'read the metrics of');
  const m = await agent.getCapsuleMetrics({ id });
  return {
    cpuUsedPct: m.cpuUsedPct,
    cpuCount: m.cpuCount,
    memUsedBytes: Number(m.memUsedBytes),
    memTotalBytes: Number(m.memTotalBytes),
    diskUsedBytes: Number(m.diskUsedBytes),
    diskTotalBytes: Number(m.diskTotalBytes),
    pids: m.pids,
    timestamp: new Date(Number(m.timestamp) || Date.now()),
  };
}

/** Runs a command to completion and returns its output (bytes, binary-safe) and exit code. */
export async function execCommand(
  ctx: ControlPlaneContext,
  teamId: string,
  id: string,
  input: ExecInput,
  signal?: AbortSignal,
): Promise<ExecResult> {
  if (typeof input.cmd !== 'string' || input.cmd.length === 0) throw new InvalidArgumentError('cmd is required');
  validateCommandTimeout(input.timeoutSec);
  const envs = validateEnvs(input.envs);
  const { agent } = await capsuleAgent(ctx, teamId, id, ['running'], 'run commands in');
  try {
    const r = await agent.exec(
      {
        capsuleId: id,
        cmd: input.cmd,
        args: input.args ?? [],
        envs,
        cwd: input.cwd ?? '',
        user: input.user ?? '',
        stdin: input.stdin ?? new Uint8Array(),
        timeoutSec: input.timeoutSec ?? 0,
        tag: input.tag ?? '',
      },
      signal ? { signal } : {},
    );
    return {
      stdout: Buffer.from(r.stdout),
      stderr: Buffer.from(r.stderr),
      exitCode: r.exitCode,
      error: r.error,
      pid: r.pid,
    };
  } catch (err) {
    if (input.timeoutSec && err instanceof DeadlineExceededError) {
      throw new DeadlineExceededError(
        `the command did not finish within timeout_sec (${input.timeoutSec} s) and was stopped; raise timeout_sec, or use exec/stream to see output as it comes`,
      );
    }
    throw err;
  }
}

export { createSnapshot, deleteSnapshot, deleteTemplate, listSnapshots } from './snapshots.js';
export { agentTemplateName, BUILTIN_TEMPLATES, DEFAULT_TEMPLATE, listTemplates, resolveTemplate } from './templates.js';
