// `wrenn volume create|ls|rm`, and the `--volume name:/path` flags of `wrenn capsule create`.
import { VOLUME_LIMITS, volumeMountsProblem } from '@wrenn/protocol';
import { Volume, type VolumeInfo } from '@wrenn/sdk';
import { CliError, connection, parseIntOption, printJson, printTable, run } from './support.js';

const volumeJson = (v: VolumeInfo) => ({
  id: v.id,
  name: v.name,
  size_mb: v.sizeMb,
  host_id: v.hostId,
  created_at: v.createdAt.toISOString(),
});

/** `--volume name:/path` (repeatable) as the create request's volume mounts, checked by the contract. */
export function parseVolumeFlags(flags: string[] | undefined): { name: string; path: string }[] | undefined {
  if (!flags || flags.length === 0) return undefined;
  const mounts = flags.map((f) => {
    const i = f.indexOf(':');
    if (i <= 0) throw new CliError(`--volume must be NAME:/PATH (e.g. --volume data:/mnt/data), got '${f}'`);
    return { name: f.slice(0, i), path: f.slice(i + 1) };
  });
  const problem = volumeMountsProblem(mounts, '--volume');
  if (problem) throw new CliError(problem);
  return mounts;
}

export const volumeCreate = (name: string, o: { size?: string; json?: boolean }) =>
  run(async () => {
    const sizeMb = parseIntOption('--size', o.size, VOLUME_LIMITS.minSizeMb, VOLUME_LIMITS.maxSizeMb);
    const v = await Volume.create(name, { ...connection(), ...(sizeMb !== undefined ? { sizeMb } : {}) });
    if (o.json) return printJson(volumeJson(v));
    process.stdout.write(`${v.id}\n`);
    if (process.stderr.isTTY)
      process.stderr.write(`mount it with: wrenn capsule create --volume ${v.name}:/mnt/${v.name}\n`);
  });

export const volumeList = (o: { json?: boolean }) =>
  run(async () => {
    const list = await Volume.list(connection());
    if (o.json) return printJson(list.map(volumeJson));
    printTable(
      ['ID', 'NAME', 'SIZE', 'CREATED'],
      list.map((v) => [v.id, v.name, `${v.sizeMb} MiB`, v.createdAt.toISOString().slice(0, 19).replace('T', ' ')]),
      'no volumes; make one with `wrenn volume create <name>`',
    );
  });

export const volumeRemove = (names: string[]) =>
  run(async () => {
    const conn = connection();
    for (const n of names) {
      await Volume.delete(n, conn);
      process.stderr.write(`deleted volume ${n}\n`);
    }
  });
