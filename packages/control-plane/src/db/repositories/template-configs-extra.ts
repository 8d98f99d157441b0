// Configuration stored with a template built from a Dockerfile (migrations/0002).
import type { Kysely } from 'kysely';
import { parseJson } from '../codec.js';
import type { Database } from '../schema.js';

export interface TemplateConfig {
  env: Record<string, string>;
  /** Default working directory of commands ('' = the user's home). */
  workdir: string;
  /** Default user of commands ('' = the capsule default, `user`). */
  user: string;
  /** Shell command started in the background when a capsule starts. */
  startCmd: string | null;
  /** Docker's ENTRYPOINT / CMD vectors (an image's, or a Dockerfile's), kept as metadata: see templates/start-command.ts. */
  entrypoint: string[];
  cmd: string[];
  /** Shell command polled until it exits 0 before the capsule is handed out. */
  readyCmd: string | null;
  /** How long the ready check may take to pass; null: the control plane's default. */
  readyTimeoutMs: number | null;
  /** Capsule shape when the create asks for none (E2B's cpuCount/memoryMB); null: the contract's default. */
  vcpus: number | null;
  memoryMb: number | null;
}

export const emptyTemplateConfig = (): TemplateConfig => ({
  env: {},
  workdir: '',
  user: '',
  startCmd: null,
  entrypoint: [],
  cmd: [],
  readyCmd: null,
  readyTimeoutMs: null,
  vcpus: null,
  memoryMb: null,
});

const stringList = (v: unknown): string[] =>
  Array.isArray(v) && v.every((w) => typeof w === 'string') ? (v as string[]) : [];

const fromJson = (text: string): TemplateConfig => {
  const j = parseJson<Record<string, unknown>>(text, {});
  return {
    env: j.env && typeof j.env === 'object' ? (j.env as Record<string, string>) : {},
    workdir: typeof j.workdir === 'string' ? j.workdir : '',
    user: typeof j.user === 'string' ? j.user : '',
    startCmd: typeof j.start_cmd === 'string' ? j.start_cmd : null,
    entrypoint: stringList(j.entrypoint),
    cmd: stringList(j.cmd),
    readyCmd: typeof j.ready_cmd === 'string' ? j.ready_cmd : null,
    readyTimeoutMs: typeof j.ready_timeout_ms === 'number' ? j.ready_timeout_ms : null,
    vcpus: typeof j.vcpus === 'number' ? j.vcpus : null,
    memoryMb: typeof j.memory_mb === 'number' ? j.memory_mb : null,
  };
};

const toJson = (c: TemplateConfig): string =>
  JSON.stringify({
    env: c.env,
    workdir: c.workdir,
    user: c.user,
    start_cmd: c.startCmd,
    entrypoint: c.entrypoint,
    cmd: c.cmd,
    ready_cmd: c.readyCmd,
    ready_timeout_ms: c.readyTimeoutMs,
    vcpus: c.vcpus,
    memory_mb: c.memoryMb,
  });

export async function setTemplateConfig(
  db: Kysely<Database>,
  templateId: string,
  config: TemplateConfig,
  cacheKey: string | null = null,
): Promise<void> {
  await db.deleteFrom('template_configs').where('template_id', '=', templateId).execute();
  await db
    .insertInto('template_configs')
    .values({ template_id: templateId, config: toJson(config), cache_key: cacheKey, created_at: Date.now() })
    .execute();
}

/** The template's configuration, or null when it has none (built-ins, plain snapshots). */
export async function getTemplateConfig(db: Kysely<Database>, templateId: string): Promise<TemplateConfig | null> {
  const r = await db
    .selectFrom('template_configs')
    .select('config')
    .where('template_id', '=', templateId)
    .executeTakeFirst();
  return r ? fromJson(r.config) : null;
}

/** The build-cache key recorded for a layer template once its snapshot was complete; null otherwise. */
export async function getTemplateCacheKey(db: Kysely<Database>, templateId: string): Promise<string | null> {
  const r = await db
    .selectFrom('template_configs')
    .select('cache_key')
    .where('template_id', '=', templateId)
    .executeTakeFirst();
  return r?.cache_key ?? null;
}
