// Warm pools set remotely: an admin gives a host the number of ready capsules to keep per template
// (PUT /v1/hosts/:id/warm-pool). The sizes are kept with the host (hosts.warm_pool_target) and sent
// to its agent (SetWarmPool) at once; the host monitor sends them again whenever the agent reports
// other sizes (an agent restarts with its own --warm-pool), so the admin's word outlives restarts.
// Templates are named as a create names them to the agent: a built-in by name, anything else by its
// template id (tpl-...), which this module turns into the agent's name.
import { InvalidArgumentError, NotFoundError, UnavailableError } from '@wrenn/protocol';
import type { ControlPlaneContext } from '../context.js';
import { type Host, setHostWarmPools, type WarmPoolReport } from '../db/repositories/hosts.js';
import { getTemplateById } from '../db/repositories/templates.js';
import { agentTemplateName, BUILTIN_TEMPLATE_ALIASES, isBuiltinTemplate } from '../services/templates.js';
import { toWarmPoolReport } from './probe.js';

const TEMPLATE_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** Deadline of one SetWarmPool call (the agent answers before the pooled capsules boot). */
const SET_TIMEOUT_MS = 10_000;

/** Sizes without the templates set to keep none, by name: what two equal settings compare equal by. */
export function normalTargets(sizes: Record<string, number>): Record<string, number> {
  return Object.fromEntries(
    Object.entries(sizes)
      .filter(([, n]) => n > 0)
      .sort(([a], [b]) => a.localeCompare(b)),
  );
}

const sameTargets = (a: Record<string, number>, b: Record<string, number>): boolean =>
  JSON.stringify(normalTargets(a)) === JSON.stringify(normalTargets(b));

/** The agents' names of the templates an admin named (built-ins by name, others by template id). */
export async function agentWarmPoolSizes(
  ctx: ControlPlaneContext,
  sizes: Record<string, number>,
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [name, n] of Object.entries(sizes)) {
    if (!TEMPLATE_NAME.test(name) || !Number.isInteger(n) || n < 0 || n > 999)
      throw new InvalidArgumentError(`warm pool ${name}=${n}: give a template name and a count from 0 to 999`);
    const builtIn = BUILTIN_TEMPLATE_ALIASES[name] ?? name;
    let agentName: string;
    if (isBuiltinTemplate(builtIn)) agentName = builtIn;
    else {
      const t = await getTemplateById(ctx.database.db, name);
      if (!t)
        throw new NotFoundError(
          `no template ${name}: name a built-in (minimal, base, code-interpreter-v1) or a template by its id (tpl-...)`,
        );
      if (t.kind === 'snapshot' && t.hostId === null)
        throw new InvalidArgumentError(`template ${name} is not kept on any host`);
      agentName = agentTemplateName(t);
    }
    if (out[agentName] !== undefined) throw new InvalidArgumentError(`template ${name} is named twice`);
    out[agentName] = n;
  }
  return out;
}

/** Sends the sizes to the host's agent and records the pools it answers with. */
export async function applyWarmPool(
  ctx: ControlPlaneContext,
  host: Host,
  sizes: Record<string, number>,
): Promise<WarmPoolReport[]> {
  const at = new Date();
  const res = await ctx.agents.client(host).setWarmPool({ sizes }, { timeoutMs: SET_TIMEOUT_MS });
  const pools = res.warmPools.map(toWarmPoolReport);
  await setHostWarmPools(ctx.database.db, host.id, { at, pools });
  return pools;
}

/** Hosts whose last re-apply failed, with the sizes it was for: the warning is logged once, not every round. */
const failedReapply = new Map<string, string>();

/**
 * From the host monitor: if the agent reports other sizes than the admin set, sends them again.
 * Never throws (a failure is logged and tried again next round).
 */
export async function reapplyWarmPoolTarget(
  ctx: ControlPlaneContext,
  host: Host,
  reported: readonly WarmPoolReport[],
): Promise<void> {
  const target = host.warmPoolTarget;
  if (!target) return;
  const now = Object.fromEntries(reported.map((p) => [p.template, p.target]));
  if (sameTargets(now, target)) {
    failedReapply.delete(host.id);
    return;
  }
  try {
    await applyWarmPool(ctx, host, target);
    failedReapply.delete(host.id);
    ctx.log.info({ hostId: host.id, sizes: target, had: normalTargets(now) }, 'warm pool sizes sent to the host again');
  } catch (err) {
    if (err instanceof UnavailableError) return; // the host monitor reports a silent host
    const key = JSON.stringify(target);
    if (failedReapply.get(host.id) === key) return;
    failedReapply.set(host.id, key);
    ctx.log.warn(
      { hostId: host.id, sizes: target, err: err instanceof Error ? err.message : String(err) },
      'the host refused the warm pool sizes set for it; set them again (PUT /v1/hosts/:id/warm-pool)',
    );
  }
}
