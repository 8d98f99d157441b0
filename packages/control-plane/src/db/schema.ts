// Row types of the SQL schema as Kysely sees them. Identical on SQLite and PostgreSQL:
// timestamps are integers (milliseconds since the epoch, BIGINT), booleans are 0/1 integers and
// JSON values are TEXT, so no column needs a dialect-specific type. Repositories convert rows
// into the domain records exported from ./types.ts.
import type { Generated } from 'kysely';

export interface TeamsTable {
  id: string;
  name: string;
  created_at: number;
}

export interface ApiKeysTable {
  id: string;
  team_id: string;
  name: string;
  /** First characters of the key, shown to users to tell keys apart. */
  prefix: string;
  /** sha256 hex of the whole key; the key itself is never stored. */
  hash: string;
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
}

export interface HostsTable {
  id: string;
  address: string;
  status: string;
  /** JSON array of runtime names the host offers. */
  runtimes: string;
  cpu_count: number;
  memory_mb: number;
  /** As last reported by the host agent in a heartbeat. */
  capsule_count: number;
  allocated_vcpus: number;
  allocated_memory_mb: number;
  registration_token_hash: string | null;
  /** What the host agent demands of callers (Authorization: Bearer); null: none known. */
  agent_secret: string | null;
  /** The certificate the agent registered (PEM), pinned on every connection to it; null: plain HTTP. */
  agent_tls_cert: string | null;
  /** More capsules the host said it can take (null: never reported); why none, when it can take none. */
  capsule_room: number | null;
  full_reason: string | null;
  last_heartbeat_at: number | null;
  created_at: number;
  /** 1 while an admin drains the host: no new capsules go there (migration 0008). */
  draining: number;
  /** The agent's last report of its warm pools, JSON (migration 0013); null: never reported. */
  warm_pools: string | null;
  /** Warm pool sizes an admin set through the API, JSON template -> count; null: the agent's own. */
  warm_pool_target: string | null;
}

export interface HostTokensTable {
  id: string;
  hash: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  host_id: string | null;
}

export interface CapsulesTable {
  id: string;
  team_id: string;
  host_id: string | null;
  template: string;
  state: string;
  runtime: string;
  vcpus: number;
  memory_mb: number;
  timeout_sec: number;
  timeout_action: string;
  /** JSON object of string values; also copied into capsule_metadata for filtering. */
  metadata: string;
  /** JSON object of environment variables given at creation (needed again to boot a hibernated capsule). */
  envs: string;
  envd_access_token: string | null;
  client_id: string | null;
  internet: number;
  auto_resume: number;
  /** Demanded by the sandbox proxy on the capsule's ports (migrations/0007); null: public. */
  traffic_access_token: string | null;
  /** The Host its servers see, ${PORT} for the port (migrations/0007); null: the client's. */
  mask_request_host: string | null;
  /** JSON object of the contract's plain fields (migrations/0011). */
  plain_fields: string;
  created_at: number;
  updated_at: number;
  expires_at: number | null;
  stopped_at: number | null;
  error: string | null;
}

/** One row per metadata entry of a capsule: lets both dialects filter by key=value with an index. */
export interface CapsuleMetadataTable {
  capsule_id: string;
  key: string;
  value: string;
}

export interface TemplatesTable {
  id: string;
  name: string;
  kind: string;
  team_id: string | null;
  host_id: string | null;
  parent: string | null;
  vcpus: number;
  memory_mb: number;
  runtimes: string;
  size_bytes: number;
  created_at: number;
}

export interface TemplateBuildsTable {
  id: string;
  template: string;
  team_id: string | null;
  status: string;
  logs: string;
  error: string | null;
  started_at: number;
  finished_at: number | null;
  /** The capsule shape asked for the template (E2B cpuCount/memoryMB); see migrations/0010. */
  vcpus: number | null;
  memory_mb: number | null;
  /** Where a failed build stopped: 'base', a step number, or 'finalize'. */
  failed_step: string | null;
}

/** A team's tag of one build of a template name (E2B's name:tag); see migrations/0009. */
export interface TemplateTagsTable {
  team_id: string;
  template: string;
  tag: string;
  build_id: string;
  created_at: number;
}

/** Which capsule a create with an Idempotency-Key made (team, key); see migrations/0012. */
export interface CapsuleCreateKeysTable {
  team_id: string;
  key: string;
  capsule_id: string;
  created_at: number;
}

/** Configuration a template's capsules start with (Dockerfile builds); see migrations/0002. */
export interface TemplateConfigsTable {
  template_id: string;
  /** JSON object: env, workdir, user, start_cmd, ready_cmd. */
  config: string;
  cache_key: string | null;
  created_at: number;
}

export interface AuditEventsTable {
  id: Generated<number>;
  team_id: string | null;
  capsule_id: string | null;
  kind: string;
  data: string;
  created_at: number;
}

/** A team's volume (migrations/0006). */
export interface VolumesTable {
  id: string;
  team_id: string;
  name: string;
  size_mb: number;
  host_id: string;
  token: string;
  created_at: number;
}

/** Which capsule mounts which volume, and where. */
export interface CapsuleVolumesTable {
  capsule_id: string;
  volume_id: string;
  path: string;
}

/** Keys every control-plane replica shares (migrations/0015), e.g. the upload links' HMAC key. */
export interface ClusterKeysTable {
  name: string;
  value: string;
  created_at: number;
}

/** An upload link that was used (one use each, across replicas); its id names the upload's chunks. */
export interface TemplateUploadsTable {
  id: string;
  team_id: string;
  hash: string;
  used_at: number;
  expires_at: number;
}

/** A team's kept COPY file set: its bytes are the chunks of upload `upload_id`. */
export interface TemplateFileSetsTable {
  team_id: string;
  hash: string;
  upload_id: string;
  bytes: number;
  chunks: number;
  created_at: number;
  last_used_at: number;
}

/** A build reading upload `upload_id`'s chunks: they are kept while it reads; see migrations/0016. */
export interface TemplateFileReadersTable {
  id: string;
  upload_id: string;
  build_id: string | null;
  bytes: number;
  chunks: number;
  started_at: number;
}

export interface TemplateFileChunksTable {
  upload_id: string;
  seq: number;
  data: Buffer;
}

export interface Database {
  teams: TeamsTable;
  api_keys: ApiKeysTable;
  hosts: HostsTable;
  host_tokens: HostTokensTable;
  capsules: CapsulesTable;
  capsule_metadata: CapsuleMetadataTable;
  templates: TemplatesTable;
  template_builds: TemplateBuildsTable;
  template_configs: TemplateConfigsTable;
  template_tags: TemplateTagsTable;
  capsule_create_keys: CapsuleCreateKeysTable;
  audit_events: AuditEventsTable;
  volumes: VolumesTable;
  capsule_volumes: CapsuleVolumesTable;
  cluster_keys: ClusterKeysTable;
  template_uploads: TemplateUploadsTable;
  template_file_sets: TemplateFileSetsTable;
  template_file_chunks: TemplateFileChunksTable;
  template_file_readers: TemplateFileReadersTable;
}
