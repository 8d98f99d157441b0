// Applying a built template's configuration when a capsule starts from it: its environment is
// merged under the request's (the caller wins), the start command (CMD/ENTRYPOINT) is launched in
// the background, and the ready check (HEALTHCHECK or `# wrenn:ready`) is polled until it exits 0
// before the capsule is handed out. envd's default user and working directory (USER/WORKDIR) go to
// the agent with the create request, which applies them at every /init (resume included).

import { DeadlineExceededError, InternalError, messageOf } from '@wrenn/protocol';
import type { AgentClient } from '../agents/pool.js';
import type { ControlPlaneContext } from '../context.js';
import { getTemplateConfig, type TemplateConfig } from '../db/repositories/template-configs-extra.js';
import type { Template } from '../db/repositories/templates.js';

export type { TemplateConfig } from '../db/repositories/template-configs-extra.js';

/** How long a ready check may take to pass before capsule creation fails. */
export const READY_TIMEOUT_MS = Number(process.env.WRENN_READY_TIMEOUT_MS ?? 120_000);
const READY_POLL_MS = 250;

/** The configuration a team template was built with; null for built-ins and plain snapshots. */
export async function templateConfigFor(ctx: ControlPlaneContext, template: Template): Promise<TemplateConfig | null> {
  if (template.teamId === null) return null;
  return getTemplateConfig(ctx.database.db, template.id);
}

/** Request envs over template envs. */
export const mergeTemplateEnvs = (
  config: TemplateConfig | null,
  envs: Record<string, string>,
): Record<string, string> => (config ? { ...config.env, ...envs } : envs);

export interface StartTarget {
  capsuleId: string;
  agent: AgentClient;
}

const shellArgs = (cmd: string) => ({ cmd: '/bin/sh', args: ['-c', cmd] });

/**
 * Applies the template's defaults, start command and ready check to a capsule that just started.
 * Throws a domain error (the caller destroys the capsule) when the start command cannot be launched or
 * the ready check does not pass in time.
 */
export async function startTemplateProcesses(t: StartTarget, config: TemplateConfig | null): Promise<void> {
  if (!config) return;
  const base = {
    capsuleId: t.capsuleId,
    envs: {},
    cwd: config.workdir,
    user: config.user.split(':')[0] ?? '',
    stdin: new Uint8Array(),
    timeoutSec: 0,
  };
  if (config.startCmd) {
    await t.agent
      .startProcess({ exec: { ...base, ...shellArgs(config.startCmd), tag: 'wrenn-start' } })
      .catch((err: unknown) => {
        throw new InternalError(`the template's start command could not be started: ${messageOf(err)}`, {
          code: 'capsule_start_failed',
          cause: err,
        });
      });
  }
  if (config.readyCmd) {
    const timeoutMs = config.readyTimeoutMs ?? READY_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      const r = await t.agent
        .exec({ ...base, ...shellArgs(config.readyCmd), timeoutSec: 30, tag: '' })
        .catch((err: unknown) => {
          last = messageOf(err);
          return null;
        });
      if (r && r.exitCode === 0 && !r.error) return;
      if (r) {
        const out = (
          Buffer.from(r.stderr).toString('utf8').trim() || Buffer.from(r.stdout).toString('utf8').trim()
        ).slice(-300);
        const why = r.error && !/^exit status \d+$/.test(r.error) ? ` (${r.error})` : '';
        last = `exit code ${r.exitCode}${why}${out ? `: ${out}` : ''}`;
      }
      if (Date.now() > deadline) {
        throw new DeadlineExceededError(
          `the template's ready check '${config.readyCmd}' did not pass within ${(timeoutMs / 1000).toFixed(1)} s; last result: ${last}`,
          { code: 'capsule_not_ready' },
        );
      }
      await new Promise((r) => setTimeout(r, READY_POLL_MS));
    }
  }
}
