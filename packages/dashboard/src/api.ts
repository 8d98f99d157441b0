// The native API (/v1) as the dashboard uses it: the API key from the login screen goes in
// X-API-Key (and ?api_key= on WebSockets, which cannot carry headers from a browser).

import type {
  ApiKeyJson,
  AuditEventJson,
  CapsuleJson,
  CapsuleNetworkJson,
  CapsuleState,
  FileEntryJson,
  HostJson,
  MetricsJson,
  ProcessJson,
  TemplateJson,
  TemplateTagJson,
} from '@wrenn/protocol';

const KEY_STORAGE = 'wrenn.apiKey';

export const getKey = (): string => localStorage.getItem(KEY_STORAGE) ?? '';
export const setKey = (key: string) => localStorage.setItem(KEY_STORAGE, key);
export const clearKey = () => localStorage.removeItem(KEY_STORAGE);

export type { CapsuleState };
/** The native API's JSON shapes, as the contract (@wrenn/protocol) defines them (type-only, nothing bundled). */
export type Capsule = CapsuleJson;

export type Metrics = MetricsJson;
export type Template = TemplateJson;
export type TemplateTag = TemplateTagJson;
export type Host = HostJson;
export type ApiKey = ApiKeyJson;
export type FileEntry = FileEntryJson;
export type Process = ProcessJson;
export type AuditEvent = AuditEventJson;
export type { CapsuleNetworkJson };
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Listeners told when the key stops working (so the app returns to the login screen). */
const unauthorizedListeners = new Set<() => void>();
export const onUnauthorized = (fn: () => void) => {
  unauthorizedListeners.add(fn);
  return () => unauthorizedListeners.delete(fn);
};

async function failure(res: Response): Promise<ApiError> {
  let code = `http_${res.status}`;
  let message = `${res.status} ${res.statusText}`;
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string } };
    if (body.error?.message) message = body.error.message;
    if (body.error?.code) code = body.error.code;
  } catch {
    // not JSON: keep the status line
  }
  if (res.status === 401) for (const fn of unauthorizedListeners) fn();
  return new ApiError(res.status, code, message);
}

export async function raw(
  method: string,
  path: string,
  init: { body?: BodyInit; json?: unknown; key?: string; signal?: AbortSignal } = {},
): Promise<Response> {
  const headers: Record<string, string> = { 'x-api-key': init.key ?? getKey() };
  let body = init.body;
  if (init.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(init.json);
  }
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      ...(body !== undefined ? { body } : {}),
      ...(init.signal ? { signal: init.signal } : {}),
    });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError(0, 'network', `The control plane did not answer (${(err as Error).message}). Is it running?`);
  }
  if (!res.ok) throw await failure(res);
  return res;
}

export async function api<T>(method: string, path: string, json?: unknown, signal?: AbortSignal): Promise<T> {
  const res = await raw(method, path, { ...(json !== undefined ? { json } : {}), ...(signal ? { signal } : {}) });
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

const enc = encodeURIComponent;

/** Every capsule of the team (following cursors), newest first. */
export async function listCapsules(signal?: AbortSignal): Promise<Capsule[]> {
  const out: Capsule[] = [];
  let cursor: string | null = null;
  do {
    const page: { capsules: Capsule[]; next_cursor: string | null } = await api(
      'GET',
      `/v1/capsules?limit=1000${cursor ? `&cursor=${enc(cursor)}` : ''}`,
      undefined,
      signal,
    );
    out.push(...page.capsules);
    cursor = page.next_cursor;
  } while (cursor && out.length < 20_000);
  return out;
}

export const capsules = {
  get: (id: string) => api<Capsule>('GET', `/v1/capsules/${enc(id)}`),
  create: (body: Record<string, unknown>) => api<Capsule>('POST', '/v1/capsules', body),
  destroy: (id: string) => api<void>('DELETE', `/v1/capsules/${enc(id)}`),
  pause: (id: string) => api<Capsule>('POST', `/v1/capsules/${enc(id)}/pause`, {}),
  resume: (id: string) => api<Capsule>('POST', `/v1/capsules/${enc(id)}/resume`, {}),
  metrics: (id: string, signal?: AbortSignal) =>
    api<Metrics>('GET', `/v1/capsules/${enc(id)}/metrics`, undefined, signal),
  events: (id: string) => api<{ events: AuditEvent[] }>('GET', `/v1/capsules/${enc(id)}/events?limit=500`),
  processes: (id: string) => api<{ processes: Process[] }>('GET', `/v1/capsules/${enc(id)}/processes`),
  kill: (id: string, pid: number) => api<void>('DELETE', `/v1/capsules/${enc(id)}/processes/${pid}`),
  exec: (id: string, cmd: string) =>
    api<{ stdout: string; stderr: string; exit_code: number }>('POST', `/v1/capsules/${enc(id)}/exec`, {
      cmd,
      timeout_sec: 20,
    }),
  listFiles: (id: string, path: string) =>
    api<{ entries: FileEntry[] }>('GET', `/v1/capsules/${enc(id)}/files/list?path=${enc(path)}`),
  mkdir: (id: string, path: string) => api<unknown>('POST', `/v1/capsules/${enc(id)}/files/mkdir`, { path }),
  remove: (id: string, path: string) => api<void>('DELETE', `/v1/capsules/${enc(id)}/files?path=${enc(path)}`),
  upload: (id: string, path: string, data: Blob) =>
    raw('PUT', `/v1/capsules/${enc(id)}/files?path=${enc(path)}`, { body: data }),
  download: (id: string, path: string) => raw('GET', `/v1/capsules/${enc(id)}/files?path=${enc(path)}`),
  network: (id: string) => api<CapsuleNetworkJson>('GET', `/v1/capsules/${enc(id)}/network`),
  /** Replaces the egress policy (an omitted field clears it); 400 says which entry is wrong. */
  setNetwork: (id: string, body: { allow_out: string[]; deny_out: string[]; rules?: unknown }) =>
    api<CapsuleNetworkJson>('PUT', `/v1/capsules/${enc(id)}/network`, body),
};

export const snapshots = {
  list: () => api<{ snapshots: Template[] }>('GET', '/v1/snapshots').then((r) => r.snapshots),
  create: (capsuleId: string, name: string) => api<Template>('POST', '/v1/snapshots', { capsule_id: capsuleId, name }),
  remove: (name: string) => api<void>('DELETE', `/v1/snapshots/${enc(name)}`),
};

export const templates = {
  list: () => api<{ templates: Template[] }>('GET', '/v1/templates').then((r) => r.templates),
  remove: (name: string) => api<void>('DELETE', `/v1/templates/${enc(name)}`),
  /** The template's tags, 'default' (its latest build) first. */
  tags: (name: string) => api<{ tags: TemplateTag[] }>('GET', `/v1/templates/${enc(name)}/tags`).then((r) => r.tags),
  /** Points `tags` at the build `ref` names ('name' = the latest build, 'name:tag' = the build that tag points at). */
  addTags: (ref: string, tags: string[]) => api<unknown>('POST', `/v1/templates/${enc(ref)}/tags`, { tags }),
  removeTag: (name: string, tag: string) => api<void>('DELETE', `/v1/templates/${enc(name)}/tags/${enc(tag)}`),
};

export const hosts = { list: () => api<{ hosts: Host[] }>('GET', '/v1/hosts').then((r) => r.hosts) };

export const apiKeys = {
  list: () => api<{ api_keys: ApiKey[] }>('GET', '/v1/api-keys').then((r) => r.api_keys),
  create: (name: string) => api<ApiKey & { key: string; e2b_key: string }>('POST', '/v1/api-keys', { name }),
  revoke: (id: string) => api<void>('DELETE', `/v1/api-keys/${enc(id)}`),
};

/** A WebSocket URL on this origin with the API key in the query. */
export function wsUrl(path: string, query: Record<string, string | number> = {}): string {
  const u = new URL(path, location.href);
  u.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  for (const [k, v] of Object.entries(query)) u.searchParams.set(k, String(v));
  u.searchParams.set('api_key', getKey());
  return u.toString();
}

/** Which operations the running control plane offers, read from its OpenAPI document. */
export async function apiOperations(): Promise<Set<string>> {
  try {
    const res = await fetch('/docs/json');
    if (!res.ok) return new Set();
    const doc = (await res.json()) as { paths?: Record<string, Record<string, unknown>> };
    const out = new Set<string>();
    for (const [path, ops] of Object.entries(doc.paths ?? {}))
      for (const m of Object.keys(ops)) out.add(`${m.toUpperCase()} ${path}`);
    return out;
  } catch {
    return new Set();
  }
}
