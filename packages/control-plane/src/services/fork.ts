// Fork: N new capsules with a running capsule's state, on the source's host (the copy lives there),
// the source running on. Both APIs fork through here. The rows are written `starting` first (ids
// and envd tokens are chosen here), the agent copies the source once and starts each fork by
// itself; every fork then becomes `running` or, when it did not start, `stopped` with why.
// On the namespace runtime a fork gets the source's files and starts fresh processes (the
// template's start command runs again); on the VM runtimes it restores the source's memory.
import { randomBytes } from 'node:crypto';
import {
  ConflictError,
  DEFAULT_TIMEOUT_ACTION,
  DomainError,
  type DomainErrorKind,
  domainError,
  FORK_DEFAULTS,
  forkRequestProblem,
  HostFullError,
  InvalidArgumentError,
  messageOf,
} from '@wrenn/protocol';
import { TimeoutAction as PbTimeoutAction } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import type { ControlPlaneContext } from '../context.js';
import { type Capsule, createCapsule as insertCapsule, setCapsuleState } from '../db/repositories/capsules.js';
import type { Host } from '../db/repositories/hosts.js';
import { capsuleVolumeMounts, setCapsuleVolumes } from '../db/repositories/volumes.js';
import { newCapsuleId } from '../ids.js';
import { agentForCapsule, hostOfCapsule, recordEvent, requireCapsuleState } from './capsules.js';
import { startTemplateProcesses, templateConfigFor } from './template-config.js';
import { resolveTemplate } from './templates.js';

export interface ForkInput {
  /** Forks to make (default 1, at most FORK_LIMITS.maxCount). */
  count?: number;
  /** Each fork's timeout in seconds; default the source's. */
  timeoutSec?: number;
}

/** One requested fork: the capsule, or the domain error that kept it from starting. */
export type ForkOutcome = { capsule: Capsule } | { error: DomainError };

export interface ForkResult {
  source: Capsule;
  /** The forks started fresh processes (namespace runtime: a copy of the files only). */
  processesRestarted: boolean;
  forks: ForkOutcome[];
}

const newEnvdAccessToken = (): string => randomBytes(24).toString('base64url');

/**
 * Forks the team's running capsule `sourceId`: 404 unknown, 409 not running, 400 bad count or
 * timeout. Failures before any fork started (the copy) are thrown; later ones are per fork.
 */
export async function forkCapsule(
  ctx: ControlPlaneContext,
  teamId: string,
  sourceId: string,
  input: ForkInput = {},
): Promise<ForkResult> {
  const problem = forkRequestProblem(input);
  if (problem) throw new InvalidArgumentError(problem);
  const source = await requireCapsuleState(ctx, teamId, sourceId, ['running'], 'fork');
  const host = await hostOfCapsule(ctx, source);
  const agent = await agentForCapsule(ctx, source);
  const count = input.count ?? FORK_DEFAULTS.count;
  const timeoutSec = input.timeoutSec ?? source.timeoutSec;
  const db = ctx.database.db;
  const now = Date.now();
  const rows: Capsule[] = [];
  for (let i = 0; i < count; i++) {
    rows.push(
      await insertCapsule(db, {
        id: newCapsuleId(),
        teamId,
        hostId: host.id,
        template: source.template,
        runtime: source.runtime,
        vcpus: source.vcpus,
        memoryMb: source.memoryMb,
        timeoutSec,
        timeoutAction: source.timeoutAction ?? DEFAULT_TIMEOUT_ACTION,
        metadata: source.metadata,
        envs: source.envs,
        envdAccessToken: newEnvdAccessToken(),
        clientId: source.clientId,
        internet: source.internet,
        autoResume: source.autoResume,
        // A private source makes private forks, each with a token of its own.
        trafficAccessToken: source.trafficAccessToken ? newEnvdAccessToken() : null,
        maskRequestHost: source.maskRequestHost,
        plainFields: source.plainFields,
        state: 'starting',
        expiresAt: timeoutSec > 0 ? new Date(now + timeoutSec * 1000) : null,
      }),
    );
  }
  // Forks mount the source's volumes too (shared, not copied): recorded so a delete sees them.
  const mounts = await capsuleVolumeMounts(db, sourceId);
  for (const r of rows) await setCapsuleVolumes(db, r.id, mounts);
  let answer: Awaited<ReturnType<typeof agent.forkCapsule>>;
  try {
    answer = await agent.forkCapsule({
      sourceId,
      forks: rows.map((r) => ({
        id: r.id,
        timeoutSec,
        // The agent applies the timeout itself; hibernating on timeout is the control plane's job.
        timeoutAction: r.timeoutAction === 'kill' ? PbTimeoutAction.DESTROY : PbTimeoutAction.PAUSE,
        envdAccessToken: r.envdAccessToken ?? '',
      })),
    });
  } catch (err) {
    // Nothing started (the copy failed, or the source stopped meanwhile): no fork exists.
    for (const r of rows) await notStarted(ctx, r, `the fork of ${sourceId} failed: ${messageOf(err)}`);
    throw err;
  }
  ctx.evictProxy(sourceId);
  const forks: ForkOutcome[] = [];
  for (const [i, row] of rows.entries()) {
    const made = answer.forks[i];
    if (!made?.capsule) {
      const kind = (made?.errorKind || 'internal') as DomainErrorKind;
      const why = made?.error || 'the agent gave no answer for this fork';
      // A full host is a 503 host_full, as for a create: nothing is wrong with the request.
      const error = kind === 'resource_exhausted' ? new HostFullError(why) : domainError(kind, why);
      await notStarted(ctx, row, error.message);
      forks.push({ error });
      continue;
    }
    const expires = made.capsule.expiresAt > 0n ? new Date(Number(made.capsule.expiresAt)) : null;
    const running = await setCapsuleState(db, row.id, 'running', { from: ['starting'], expiresAt: expires });
    if (!running) {
      await agent.destroyCapsule({ id: row.id }).catch(() => undefined);
      forks.push({ error: new ConflictError(`capsule ${row.id} was destroyed while it was starting`) });
      continue;
    }
    primeRoute(ctx, running, host, made.capsule.address);
    forks.push({ capsule: running });
    await recordEvent(ctx, teamId, row.id, 'capsule.forked', {
      from: sourceId,
      host_id: host.id,
      ms: Date.now() - now,
    });
  }
  if (answer.processesRestarted) await restartTemplateProcesses(ctx, teamId, source, forks);
  await recordEvent(ctx, teamId, sourceId, 'capsule.fork', {
    forks: forks.map((f) => ('capsule' in f ? f.capsule.id : null)),
    processes_restarted: answer.processesRestarted,
  });
  return { source, processesRestarted: answer.processesRestarted, forks };
}

/** A fork that never ran: its row is stopped with why (the capsule list does not show it). */
async function notStarted(ctx: ControlPlaneContext, row: Capsule, why: string): Promise<void> {
  await setCapsuleState(ctx.database.db, row.id, 'stopped', { error: `not created: ${why}`, from: ['starting'] }).catch(
    () => null,
  );
  ctx.evictProxy(row.id);
}

/** The proxy learns where the fork is, so the SDK's first call finds it. */
function primeRoute(ctx: ControlPlaneContext, c: Capsule, host: Host, address: string): void {
  ctx.evictProxy(c.id);
  ctx.primeProxy(c.id, {
    state: 'running',
    hostId: host.id,
    agentUrl: host.address,
    agentSecret: host.agentSecret,
    agentTlsCert: host.agentTlsCert ?? null,
    trafficToken: c.trafficAccessToken,
    maskRequestHost: c.maskRequestHost,
    ...(ctx.localHostIds.has(host.id) && address ? { capsuleAddress: address } : {}),
  });
}

/**
 * Forks that restarted their processes run the template's start command and ready check again, as
 * a new capsule of the template would; a fork whose start fails is destroyed and reported failed.
 */
async function restartTemplateProcesses(
  ctx: ControlPlaneContext,
  teamId: string,
  source: Capsule,
  forks: ForkOutcome[],
): Promise<void> {
  const template = await resolveTemplate(ctx, teamId, source.template).catch(() => null);
  const config = template ? await templateConfigFor(ctx, template) : null;
  if (!config) return;
  const agent = await agentForCapsule(ctx, source);
  for (const [i, f] of forks.entries()) {
    if (!('capsule' in f)) continue;
    try {
      await startTemplateProcesses({ capsuleId: f.capsule.id, agent }, config);
    } catch (err) {
      await agent.destroyCapsule({ id: f.capsule.id }).catch(() => undefined);
      await setCapsuleState(ctx.database.db, f.capsule.id, 'stopped', { error: messageOf(err) }).catch(() => null);
      ctx.evictProxy(f.capsule.id);
      forks[i] = {
        error: err instanceof DomainError ? err : domainError('internal', messageOf(err)),
      };
    }
  }
}
