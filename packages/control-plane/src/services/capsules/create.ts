// Creating a capsule: validate, resolve the template, place it on the least-loaded host, record it
// starting, ask the agent to start it, record it running (or error, after asking the agent to
// remove whatever it made), then run a built template's start command and ready check.
import { randomBytes } from 'node:crypto';
import {
  asDomainError,
  CAPSULE_DEFAULTS,
  type CapsuleRequest,
  ConflictError,
  DEFAULT_TIMEOUT_ACTION,
  DomainError,
  InternalError,
  InvalidArgumentError,
  messageOf,
} from '@wrenn/protocol';
import type { Capsule as PbCapsule } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import type { ControlPlaneContext } from '../../context.js';
import {
  type Capsule,
  getCapsule,
  createCapsule as insertCapsule,
  setCapsuleState,
  type TimeoutAction,
  updateCapsule,
} from '../../db/repositories/capsules.js';
import type { Host } from '../../db/repositories/hosts.js';
import { setCapsuleVolumes } from '../../db/repositories/volumes.js';
import { newCapsuleId } from '../../ids.js';
import { NoHostError, pickHost } from '../../scheduler/least-loaded.js';
import { ensureImageTemplate } from '../image-templates.js';
import {
  mergeTemplateEnvs,
  startTemplateProcesses,
  type TemplateConfig,
  templateConfigFor,
} from '../template-config.js';
import { templateOfRef } from '../template-refs.js';
import { agentTemplateName, DEFAULT_TEMPLATE, resolveTemplate } from '../templates.js';
import { resolveVolumeMounts } from '../volumes.js';
import { expiresFromAgent, timeoutActionToAgent } from './agent-mapping.js';
import { recordEvent } from './audit.js';
import { destroyCapsule } from './lifecycle.js';
import { hasPolicy, policyToAgent } from './network.js';
import { isCapacityRefusal, noHostError, placeElsewhere } from './placement.js';
import { validateCreate, validateEnvs, validateMetadata } from './validate.js';

export interface CreateCapsuleInput extends CapsuleRequest {
  /** What happens at the timeout; default 'kill'. */
  timeoutAction?: TimeoutAction;
  /** Free-form id of the caller (the E2B API stores its clientID here). */
  clientId?: string;
  /** Skip a built template's start command and ready check (template builds set this). */
  skipTemplateStart?: boolean;
  /** The id to give the capsule (an idempotent create claims its key for it first); default a new one. */
  id?: string;
}

const newEnvdAccessToken = (): string => randomBytes(24).toString('base64url');

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
  // From an image: pulled (when missing) on a host that can take this capsule; a create that finds
  // the image template gone there (the host's image cache collector removed it between the pull
  // and the create) pulls it again on that host, once.
  const pullImage = (placement: { hostId?: string; vcpus?: number; memoryMb?: number } = {}) =>
    ensureImageTemplate(ctx, teamId, {
      image: input.image ?? '',
      ...(input.registryCredentials ? { credentials: input.registryCredentials } : {}),
      placement: {
        vcpus: input.vcpus ?? CAPSULE_DEFAULTS.vcpus,
        memoryMb: input.memoryMb ?? CAPSULE_DEFAULTS.memoryMb,
        ...(input.runtime ? { runtime: input.runtime } : {}),
        ...placement,
      },
    });
  const template = input.image
    ? (await pullImage()).template
    : await resolveTemplate(ctx, teamId, await templateOfRef(ctx, teamId, input.template ?? DEFAULT_TEMPLATE));
  const templateConfig = await templateConfigFor(ctx, template);
  // Snapshot templates fix the machine shape they were taken with; a built template may give a
  // default shape (E2B's cpuCount/memoryMB) that the request overrides.
  const fixedShape = template.kind === 'snapshot';
  const vcpus = fixedShape ? template.vcpus : (input.vcpus ?? templateConfig?.vcpus ?? CAPSULE_DEFAULTS.vcpus);
  const memoryMb = fixedShape
    ? template.memoryMb
    : (input.memoryMb ?? templateConfig?.memoryMb ?? CAPSULE_DEFAULTS.memoryMb);
  const timeoutSec = input.timeoutSec ?? CAPSULE_DEFAULTS.timeoutSec;
  const timeoutAction = input.timeoutAction ?? DEFAULT_TIMEOUT_ACTION;
  const envs = mergeTemplateEnvs(templateConfig, validateEnvs(input.envs));
  const metadata = validateMetadata(input.metadata);
  // Volumes live on one host each: the capsule goes where its volumes are.
  const volumes = await resolveVolumeMounts(ctx, teamId, input.volumeMounts);
  if (volumes.hostId && template.hostId && volumes.hostId !== template.hostId)
    throw new InvalidArgumentError(`template ${template.name} and the volumes asked for are on different hosts`);
  const onlyHost = template.hostId ?? volumes.hostId;
  // Without a runtime asked for, volumes go to the namespace runtime (capsules share them there;
  // on qemu a capsule holds its volumes alone).
  const wantRuntime = input.runtime ?? (volumes.mounts.length ? 'namespace' : undefined);

  // Hosts that refused this capsule for lack of room: the next placement skips them.
  const refusedBy = new Set<string>();
  const place = async () => {
    try {
      return await pickHost(db, {
        vcpus,
        memoryMb,
        ...(wantRuntime ? { runtime: wantRuntime } : {}),
        runtimes: template.runtimes,
        hostId: onlyHost,
        excludeHostIds: refusedBy,
        // The agents' warm pools hold capsules with the default network and no volumes.
        ...(!hasPolicy(input.network) && volumes.mounts.length === 0
          ? { warm: { agentTemplate: agentTemplateName(template), template: template.name } }
          : {}),
      });
    } catch (err) {
      if (err instanceof NoHostError) throw await noHostError(ctx, input.runtime, template, err);
      throw err;
    }
  };
  let { host, runtime } = await place();
  const id = input.id ?? newCapsuleId();
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
    // E2B's allowPublicTraffic: false: the proxy lets through only requests that carry this.
    trafficAccessToken: input.network?.allowPublicTraffic === false ? newEnvdAccessToken() : null,
    maskRequestHost: input.network?.maskRequestHost ?? null,
    plainFields: input.plainFields ?? {},
    state: 'starting',
    expiresAt: timeoutSec > 0 ? new Date(now + timeoutSec * 1000) : null,
  });
  await setCapsuleVolumes(db, id, volumes.mounts);

  let agent = ctx.agents.client(host);
  let made: PbCapsule | undefined;
  let pulledAgain = false;
  for (;;) {
    try {
      const res = await agent.createCapsule({
        id,
        template: agentTemplateName(template),
        vcpus,
        memoryMb,
        timeoutSec,
        timeoutAction: timeoutActionToAgent(timeoutAction),
        envs,
        metadata,
        internet: input.internet ?? CAPSULE_DEFAULTS.internet,
        ...(hasPolicy(input.network) ? { network: policyToAgent(input.network) } : {}),
        envdAccessToken,
        runtime,
        // The caller's default_user, else a Dockerfile template's USER (and its WORKDIR): the agent
        // applies them at every envd /init.
        defaultUser: input.defaultUser ?? templateConfig?.user.split(':')[0] ?? '',
        defaultWorkdir: templateConfig?.workdir ?? '',
        volumeMounts: volumes.mounts,
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
      if (input.image && !pulledAgain && e instanceof DomainError && e.kind === 'not_found') {
        pulledAgain = true;
        // This capsule already counts on the host: the pull itself asks for no room.
        if (
          await pullImage({ hostId: host.id, vcpus: 1, memoryMb: 1 }).then(
            () => true,
            () => false,
          )
        )
          continue;
      }
      const message = messageOf(e);
      await setCapsuleState(db, id, 'error', { error: message, from: ['starting'] }).catch(() => null);
      // Whatever part of the capsule the agent made must go; it may have made nothing at all.
      await agent.destroyCapsule({ id }).catch(() => undefined);
      ctx.evictProxy(id);
      await recordEvent(ctx, teamId, id, 'capsule.error', { during: 'create', message, host_id: host.id });
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
    // A replayed create (create-once.ts) may have adopted it already: that one is the answer.
    const adopted = await getCapsule(db, id);
    if (adopted?.state === 'running') return adopted;
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
    agentTlsCert: host.agentTlsCert ?? null,
    trafficToken: result.trafficAccessToken,
    maskRequestHost: result.maskRequestHost,
    ...(ctx.localHostIds.has(host.id) && made?.address ? { capsuleAddress: made.address } : {}),
  });
  if (!input.skipTemplateStart) await startFromTemplateConfig(ctx, teamId, result, host, templateConfig);
  await recordEvent(ctx, teamId, id, 'capsule.created', {
    template: template.name,
    host_id: host.id,
    runtime: result.runtime,
    vcpus,
    memory_mb: memoryMb,
    ms: Date.now() - now,
    // A ready capsule of the host's warm pool was claimed (no boot).
    warm_pool: made?.fromWarmPool === true,
    // As E2B records them: which MCP servers the caller's gateway runs (the SDK starts it).
    ...(input.mcp ? { mcp_servers: Object.keys(input.mcp) } : {}),
  });
  return result;
}

/**
 * A built template's start command and ready check (services/template-config.ts); a capsule whose
 * start fails or never gets ready is destroyed, so create either returns a ready capsule or fails.
 */
export async function startFromTemplateConfig(
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
