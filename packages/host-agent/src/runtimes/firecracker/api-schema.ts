// The request bodies of Firecracker's HTTP API that Wrenn sends, written from the facts of its
// published OpenAPI specification (src/firecracker/swagger/firecracker.yaml): required fields,
// types, enums and ranges. Firecracker rejects unknown fields, so the check does too.
export type FieldType = 'string' | 'boolean' | 'integer' | 'array' | { ref: string };

export interface FieldSpec {
  type: FieldType;
  enum?: readonly string[];
  min?: number;
  max?: number;
  items?: FieldType;
}

export interface Definition {
  required: readonly string[];
  properties: Record<string, FieldSpec>;
  /** Free-form JSON object (MMDS data). */
  any?: boolean;
}

const tokenBucket: Definition = {
  required: ['refill_time', 'size'],
  properties: {
    one_time_burst: { type: 'integer', min: 0 },
    refill_time: { type: 'integer', min: 0 },
    size: { type: 'integer', min: 0 },
  },
};

export const DEFINITIONS: Record<string, Definition> = {
  BootSource: {
    required: ['kernel_image_path'],
    properties: {
      boot_args: { type: 'string' },
      initrd_path: { type: 'string' },
      kernel_image_path: { type: 'string' },
    },
  },
  Drive: {
    required: ['drive_id', 'is_root_device'],
    properties: {
      drive_id: { type: 'string' },
      partuuid: { type: 'string' },
      is_root_device: { type: 'boolean' },
      cache_type: { type: 'string', enum: ['Unsafe', 'Writeback'] },
      is_read_only: { type: 'boolean' },
      path_on_host: { type: 'string' },
      rate_limiter: { type: { ref: 'RateLimiter' } },
      io_engine: { type: 'string', enum: ['Sync', 'Async'] },
      socket: { type: 'string' },
    },
  },
  NetworkInterface: {
    required: ['host_dev_name', 'iface_id'],
    properties: {
      guest_mac: { type: 'string' },
      host_dev_name: { type: 'string' },
      iface_id: { type: 'string' },
      mtu: { type: 'integer', min: 68, max: 65535 },
      rx_rate_limiter: { type: { ref: 'RateLimiter' } },
      tx_rate_limiter: { type: { ref: 'RateLimiter' } },
    },
  },
  RateLimiter: {
    required: [],
    properties: { bandwidth: { type: { ref: 'TokenBucket' } }, ops: { type: { ref: 'TokenBucket' } } },
  },
  TokenBucket: tokenBucket,
  MachineConfiguration: {
    required: ['mem_size_mib', 'vcpu_count'],
    properties: {
      smt: { type: 'boolean' },
      mem_size_mib: { type: 'integer' },
      track_dirty_pages: { type: 'boolean' },
      vcpu_count: { type: 'integer', min: 1, max: 32 },
      huge_pages: { type: 'string', enum: ['None', 'Transparent', '2M'] },
    },
  },
  MmdsConfig: {
    required: ['network_interfaces'],
    properties: {
      version: { type: 'string', enum: ['V1', 'V2'] },
      network_interfaces: { type: 'array', items: 'string' },
      ipv4_address: { type: 'string' },
      imds_compat: { type: 'boolean' },
    },
  },
  MmdsContentsObject: { required: [], properties: {}, any: true },
  InstanceActionInfo: {
    required: ['action_type'],
    properties: { action_type: { type: 'string', enum: ['FlushMetrics', 'InstanceStart', 'SendCtrlAltDel'] } },
  },
  Vm: { required: ['state'], properties: { state: { type: 'string', enum: ['Paused', 'Resumed'] } } },
  SnapshotCreateParams: {
    required: ['mem_file_path', 'snapshot_path'],
    properties: {
      mem_file_path: { type: 'string' },
      snapshot_path: { type: 'string' },
      snapshot_type: { type: 'string', enum: ['Full', 'Diff'] },
    },
  },
  MemoryBackend: {
    required: ['backend_type', 'backend_path'],
    properties: { backend_type: { type: 'string', enum: ['File', 'Uffd'] }, backend_path: { type: 'string' } },
  },
  SnapshotLoadParams: {
    required: ['snapshot_path'],
    properties: {
      enable_diff_snapshots: { type: 'boolean' },
      track_dirty_pages: { type: 'boolean' },
      mem_file_path: { type: 'string' },
      mem_backend: { type: { ref: 'MemoryBackend' } },
      snapshot_path: { type: 'string' },
      resume_vm: { type: 'boolean' },
      clock_realtime: { type: 'boolean' },
    },
  },
};

/** Routes: method + path pattern -> body definition (undefined: no body). */
export const ROUTES: { method: string; path: RegExp; body?: string }[] = [
  { method: 'GET', path: /^\/$/ },
  { method: 'GET', path: /^\/version$/ },
  { method: 'GET', path: /^\/machine-config$/ },
  { method: 'PUT', path: /^\/boot-source$/, body: 'BootSource' },
  { method: 'PUT', path: /^\/drives\/[^/]+$/, body: 'Drive' },
  { method: 'PUT', path: /^\/network-interfaces\/[^/]+$/, body: 'NetworkInterface' },
  { method: 'PUT', path: /^\/machine-config$/, body: 'MachineConfiguration' },
  { method: 'PUT', path: /^\/mmds\/config$/, body: 'MmdsConfig' },
  { method: 'PUT', path: /^\/mmds$/, body: 'MmdsContentsObject' },
  { method: 'PUT', path: /^\/actions$/, body: 'InstanceActionInfo' },
  { method: 'PATCH', path: /^\/vm$/, body: 'Vm' },
  { method: 'PUT', path: /^\/snapshot\/create$/, body: 'SnapshotCreateParams' },
  { method: 'PUT', path: /^\/snapshot\/load$/, body: 'SnapshotLoadParams' },
];

function checkType(t: FieldType, v: unknown, where: string, errors: string[]): void {
  if (typeof t === 'object') {
    errors.push(...validateDefinition(t.ref, v, where));
    return;
  }
  const ok =
    t === 'string'
      ? typeof v === 'string'
      : t === 'boolean'
        ? typeof v === 'boolean'
        : t === 'integer'
          ? Number.isSafeInteger(v)
          : Array.isArray(v);
  if (!ok) errors.push(`${where}: expected ${t}, got ${JSON.stringify(v)}`);
}

export function validateDefinition(name: string, body: unknown, where = name): string[] {
  const def = DEFINITIONS[name];
  if (!def) return [`${where}: unknown definition ${name}`];
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return [`${where}: expected an object`];
  if (def.any) return [];
  const errors: string[] = [];
  const obj = body as Record<string, unknown>;
  for (const r of def.required) if (!(r in obj)) errors.push(`${where}: missing required field ${r}`);
  for (const [k, v] of Object.entries(obj)) {
    const spec = def.properties[k];
    if (!spec) {
      errors.push(`${where}: unknown field ${k}`);
      continue;
    }
    checkType(spec.type, v, `${where}.${k}`, errors);
    if (spec.enum && !spec.enum.includes(v as string))
      errors.push(`${where}.${k}: ${JSON.stringify(v)} is not one of ${spec.enum.join(', ')}`);
    if (spec.min !== undefined && typeof v === 'number' && v < spec.min)
      errors.push(`${where}.${k}: below ${spec.min}`);
    if (spec.max !== undefined && typeof v === 'number' && v > spec.max)
      errors.push(`${where}.${k}: above ${spec.max}`);
    if (spec.items && Array.isArray(v)) {
      for (const [i, x] of v.entries()) checkType(spec.items, x, `${where}.${k}[${i}]`, errors);
    }
  }
  return errors;
}

/** Checks one request against the routes and definitions; returns the problems (empty: valid). */
export function validateRequest(method: string, path: string, body: unknown): string[] {
  const route = ROUTES.find((r) => r.method === method && r.path.test(path));
  if (!route) return [`${method} ${path}: not an API route Wrenn may call`];
  if (!route.body) return body === undefined ? [] : [`${method} ${path}: takes no body`];
  return validateDefinition(route.body, body, `${method} ${path}`);
}
