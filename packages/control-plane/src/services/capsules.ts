// Capsule operations shared by the native (/v1) and E2B-compatible APIs: this file is their front
// door, the work is split by job under capsules/ (validate, lookup, create and placement,
// lifecycle, exec, metrics, audit, agent-mapping). Every function is scoped to a team (another
// team's capsule is "not found"), keeps the database true and calls the host agent; every state
// change drops the proxy's cached route. Failures are thrown as domain errors (@wrenn/protocol;
// the agent client turns the agent's Connect codes into them too), so each API only has to render
// them in its own error shape.
import { LIVE_CAPSULE_STATES } from '@wrenn/protocol';

export type { PauseMode } from '@wrenn/protocol';
export type { AgentClient } from '../agents/pool.js';
export type { Page } from '../db/pagination.js';
export type { Capsule, CapsuleState, TimeoutAction } from '../db/repositories/capsules.js';
export { stateFromAgent } from './capsules/agent-mapping.js';
export { recordEvent } from './capsules/audit.js';
export { type CreateCapsuleInput, createCapsule } from './capsules/create.js';
export { createCapsuleOnce } from './capsules/create-once.js';
export { type ExecInput, type ExecResult, execCommand } from './capsules/exec.js';
export { destroyCapsule, pauseCapsule, pingCapsule, resumeCapsule, setCapsuleTimeout } from './capsules/lifecycle.js';
export {
  agentForCapsule,
  capsuleAgent,
  getCapsule,
  hostOfCapsule,
  type ListCapsulesInput,
  listCapsules,
  requireCapsuleState,
} from './capsules/lookup.js';
export { type CapsuleMetrics, capsuleMetrics, capsuleMetricsHistory } from './capsules/metrics.js';
export {
  type CapsuleEgressPolicy,
  getCapsuleNetwork,
  updateCapsuleNetwork,
} from './capsules/network.js';
export { validateCommandTimeout, validateCreate, validateEnvs, validateMetadata } from './capsules/validate.js';

/** States in which a capsule still exists somewhere (on its host's disk at least). */
export const LIVE_STATES = LIVE_CAPSULE_STATES;

export { createSnapshot, deleteSnapshot, deleteTemplate, listSnapshots } from './snapshots.js';
export { deleteTemplateWithTags } from './tagged-builds.js';
export { agentTemplateName, BUILTIN_TEMPLATES, DEFAULT_TEMPLATE, listTemplates, resolveTemplate } from './templates.js';
