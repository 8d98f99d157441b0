// Volumes: persistent named storage of the team with a size limit each, mounted into capsules at
// create (Capsule.create({ volumeMounts: [{ name, path }] })) and read and written without one.
import type { CreateVolumeBodyJson, VolumeEntryFields, VolumeEntryJson, VolumeJson } from '@wrenn/protocol';
import type { ConnectionOptions } from './config.js';
import { ApiClient } from './http.js';

export interface VolumeInfo {
  id: string;
  name: string;
  sizeMb: number;
  hostId: string;
  /** Bearer token of the E2B-compatible volume content API (the e2b SDK's Volume uses it). */
  token: string;
  createdAt: Date;
}

/** A file or directory of a volume: the contract's volume entry (@wrenn/protocol) in camelCase. */
export interface VolumeEntry extends VolumeEntryFields {
  /** From the volume's root. */
  path: string;
  /** As capsules see them (0 = root inside). */
  uid: number;
}

const info = (j: VolumeJson): VolumeInfo => ({
  id: j.id,
  name: j.name,
  sizeMb: j.size_mb,
  hostId: j.host_id,
  token: j.token,
  createdAt: new Date(j.created_at),
});
const entry = (j: VolumeEntryJson): VolumeEntry => ({
  name: j.name,
  path: j.path,
  type: j.type,
  size: j.size,
  mode: j.mode,
  uid: j.uid,
  gid: j.gid,
  modifiedAt: new Date(j.modified_at),
  ...(j.symlink_target ? { symlinkTarget: j.symlink_target } : {}),
});
/** A volume named by id or name, as a path segment. */
const at = (volume: string) => `/v1/volumes/${encodeURIComponent(volume)}`;

// biome-ignore lint/complexity/noStaticOnlyClass: E2B-shaped API (Volume.create/list/delete)
export class Volume {
  /** Creates a volume of `sizeMb` MiB (default: the server's, 1024). */
  static async create(name: string, opts: ConnectionOptions & { sizeMb?: number } = {}): Promise<VolumeInfo> {
    const body: CreateVolumeBodyJson = { name, ...(opts.sizeMb !== undefined ? { size_mb: opts.sizeMb } : {}) };
    return info(await new ApiClient(opts).json<VolumeJson>('POST', '/v1/volumes', { json: body }));
  }

  static async list(opts: ConnectionOptions = {}): Promise<VolumeInfo[]> {
    const r = await new ApiClient(opts).json<{ volumes: VolumeJson[] }>('GET', '/v1/volumes');
    return r.volumes.map(info);
  }

  /** A volume by id or name. */
  static async get(volume: string, opts: ConnectionOptions = {}): Promise<VolumeInfo> {
    return info(await new ApiClient(opts).json<VolumeJson>('GET', at(volume)));
  }

  /** Deletes a volume and its files (ConflictError while a capsule mounts it). */
  static async delete(volume: string, opts: ConnectionOptions = {}): Promise<void> {
    await new ApiClient(opts).json('DELETE', at(volume));
  }

  /** Entries of a directory of the volume (`depth` levels, default 1). */
  static async listEntries(
    volume: string,
    path = '/',
    opts: ConnectionOptions & { depth?: number } = {},
  ): Promise<VolumeEntry[]> {
    const r = await new ApiClient(opts).json<{ entries: VolumeEntryJson[] }>('GET', `${at(volume)}/entries`, {
      query: { path, depth: opts.depth },
    });
    return r.entries.map(entry);
  }

  static async readFile(volume: string, path: string, opts: ConnectionOptions = {}): Promise<Uint8Array> {
    const res = await new ApiClient(opts).fetch('GET', `${at(volume)}/files`, { query: { path } });
    return new Uint8Array(await res.arrayBuffer());
  }

  /** Writes a file (missing parent directories are made). */
  static async writeFile(
    volume: string,
    path: string,
    data: string | Uint8Array,
    opts: ConnectionOptions = {},
  ): Promise<VolumeEntry> {
    const j = await new ApiClient(opts).json<VolumeEntryJson>('PUT', `${at(volume)}/files`, {
      query: { path },
      body: typeof data === 'string' ? data : new Blob([data as Uint8Array<ArrayBuffer>]),
      headers: { 'content-type': 'application/octet-stream' },
    });
    return entry(j);
  }

  /** Removes a file or a directory with what it holds. */
  static async remove(volume: string, path: string, opts: ConnectionOptions = {}): Promise<void> {
    await new ApiClient(opts).json('DELETE', `${at(volume)}/files`, { query: { path } });
  }
}
