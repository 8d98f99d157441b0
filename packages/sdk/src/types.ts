// Shapes the SDK returns (camelCase) and the converters from the API's JSON (snake_case). The
// capsule's JSON is the contract's (@wrenn/protocol, a type-only import: nothing of it is bundled).

import type {
  CapsuleFields,
  CapsuleJson,
  CapsulePlainFieldsJson,
  CapsuleState,
  FileEntryJson as EntryJson,
  TemplateFields,
  TemplateJson,
} from '@wrenn/protocol';

export type { CapsuleJson, CapsuleState, EntryJson, TemplateJson };

/** A capsule as the API describes it: the contract's capsule fields (@wrenn/protocol CapsuleFields) in camelCase. */
export interface CapsuleInfo extends CapsuleFields {
  capsuleId: string;
  timeoutAction: string;
  /** A paused capsule resumes on its next request through the sandbox proxy. */
  autoResume: boolean;
  /** With network.allowPublicTraffic false: send it as e2b-traffic-access-token to reach its ports. */
  trafficAccessToken: string | null;
  /** The Host header its servers see (`${PORT}` for the port), if masked. */
  maskRequestHost: string | null;
  /** Volumes mounted in the capsule (name and path), as the server records them. */
  volumeMounts: { name: string; path: string }[];
  /** The contract's plain fields given at creation (@wrenn/protocol plain-fields.ts), as the API spells them. */
  plainFields: CapsulePlainFieldsJson;
}

const date = (s: string | null | undefined) => (s ? new Date(s) : null);

export function capsuleInfo(j: CapsuleJson): CapsuleInfo {
  return {
    plainFields: plainFieldsOf(j),
    capsuleId: j.id,
    template: j.template,
    state: j.state,
    runtime: j.runtime,
    vcpus: j.vcpus,
    memoryMb: j.memory_mb,
    timeoutSec: j.timeout_sec,
    timeoutAction: j.timeout_action,
    hostId: j.host_id,
    metadata: j.metadata ?? {},
    internet: j.internet,
    autoResume: j.auto_resume,
    envdAccessToken: j.envd_access_token,
    trafficAccessToken: j.traffic_access_token,
    maskRequestHost: j.mask_request_host,
    createdAt: new Date(j.created_at),
    updatedAt: new Date(j.updated_at),
    expiresAt: date(j.expires_at),
    stoppedAt: date(j.stopped_at),
    error: j.error,
    volumeMounts: (j.volume_mounts ?? []).map((m) => ({ name: m.name, path: m.path })),
  };
}

/**
 * What is left of the capsule JSON once every field of CapsuleSchema's own is taken out: the plain
 * fields (the list lives in the contract, which the SDK takes types only from, so none at run time).
 */
function plainFieldsOf(j: CapsuleJson): CapsulePlainFieldsJson {
  const {
    id: _id,
    template: _template,
    state: _state,
    runtime: _runtime,
    vcpus: _vcpus,
    memory_mb: _memory,
    timeout_sec: _timeout,
    timeout_action: _action,
    host_id: _host,
    metadata: _metadata,
    internet: _internet,
    auto_resume: _autoResume,
    envd_access_token: _envdToken,
    traffic_access_token: _trafficToken,
    mask_request_host: _mask,
    created_at: _created,
    updated_at: _updated,
    expires_at: _expires,
    stopped_at: _stopped,
    error: _error,
    volume_mounts: _mounts,
    ...plain
  } = j;
  // A field added to CapsuleSchema outside the plain ones must be named above: this fails to compile until it is.
  const onlyPlain: SameKeys<typeof plain, CapsulePlainFieldsJson> = true;
  void onlyPlain;
  return plain;
}
type SameKeys<A, B> = [keyof A] extends [keyof B] ? ([keyof B] extends [keyof A] ? true : false) : false;

export type { CapsuleMetrics } from '@wrenn/protocol';

export interface EntryInfo {
  name: string;
  path: string;
  type: 'file' | 'dir' | 'symlink' | string;
  size: number;
  mode: number;
  owner: string;
  group: string;
  modifiedTime: Date | null;
  symlinkTarget?: string;
}

export function entryInfo(j: EntryJson): EntryInfo {
  return {
    name: j.name,
    path: j.path,
    type: j.type,
    size: j.size,
    mode: j.mode,
    owner: j.owner,
    group: j.group,
    modifiedTime: date(j.modified_at),
    ...(j.symlink_target !== undefined ? { symlinkTarget: j.symlink_target } : {}),
  };
}

/** A template: the contract's template fields (@wrenn/protocol TemplateFields) in camelCase. */
export interface TemplateInfo extends TemplateFields {
  builtin: boolean;
  /** Tags set on its builds (start one with `template: 'name:tag'`); 'default' (the latest) is not listed. */
  tags: string[];
}

export function templateInfo(j: TemplateJson): TemplateInfo {
  return {
    id: j.id,
    name: j.name,
    kind: j.kind,
    builtin: j.builtin,
    hostId: j.host_id,
    parent: j.parent,
    vcpus: j.vcpus,
    memoryMb: j.memory_mb,
    runtimes: j.runtimes,
    sizeBytes: j.size_bytes,
    createdAt: new Date(j.created_at),
    tags: j.tags,
  };
}

export interface ProcessInfo {
  pid: number;
  tag: string;
  cmd: string;
  args: string[];
  cwd: string;
}

// Base64 without Buffer, so the same code runs in browsers.
export function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

export function fromBase64(b64: string): Uint8Array {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

export const encodeText = (s: string): Uint8Array => new TextEncoder().encode(s);
