// `wrenn snapshot create|ls|rm` and `wrenn template ls|rm|build`.
import { Snapshot, Template, type TemplateInfo } from '@wrenn/sdk';
import { bytes, CliError, connection, printJson, printTable, run } from './support.js';

const templateJson = (t: TemplateInfo) => ({
  name: t.name,
  kind: t.kind,
  builtin: t.builtin,
  parent: t.parent,
  vcpus: t.vcpus,
  memory_mb: t.memoryMb,
  size_bytes: t.sizeBytes,
  created_at: t.createdAt.toISOString(),
});

function table(list: TemplateInfo[], empty: string): void {
  printTable(
    ['NAME', 'KIND', 'PARENT', 'SIZE', 'CREATED'],
    list.map((t) => [
      t.name,
      t.builtin ? `${t.kind} (built-in)` : t.kind,
      t.parent ?? '-',
      bytes(t.sizeBytes),
      t.createdAt.toISOString().slice(0, 19).replace('T', ' '),
    ]),
    empty,
  );
}

export const snapshotCreate = (capsuleId: string, name: string) =>
  run(async () => {
    const s = await Snapshot.create(capsuleId, name, connection());
    process.stdout.write(`${s.name}\n`);
    if (process.stderr.isTTY)
      process.stderr.write(`start capsules from it with: wrenn capsule create --template ${s.name}\n`);
  });

export const snapshotList = (o: { json?: boolean }) =>
  run(async () => {
    const list = await Snapshot.list(connection());
    if (o.json) return printJson(list.map(templateJson));
    table(list, 'no snapshots; make one with `wrenn snapshot create <capsule-id> <name>`');
  });

export const snapshotRemove = (names: string[]) =>
  run(async () => {
    const conn = connection();
    for (const n of names) {
      await Snapshot.delete(n, conn);
      process.stderr.write(`deleted snapshot ${n}\n`);
    }
  });

export const templateList = (o: { json?: boolean }) =>
  run(async () => {
    const list = await Template.list(connection());
    if (o.json) return printJson(list.map(templateJson));
    table(list, 'no templates');
  });

export const templateRemove = (names: string[]) =>
  run(async () => {
    const conn = connection();
    for (const n of names) {
      await Template.delete(n, conn);
      process.stderr.write(`deleted template ${n}\n`);
    }
  });

export interface TemplateBuildOpts {
  file?: string;
  name?: string;
  context?: string;
}

/** Dockerfile builds: calls Template.build from the SDK once the template-build work provides it. */
export const templateBuild = (o: TemplateBuildOpts) =>
  run(async () => {
    const build = (Template as unknown as { build?: (opts: Record<string, unknown>) => Promise<unknown> }).build;
    if (typeof build !== 'function') {
      throw new CliError(
        'template builds are not available in this version of the SDK yet (Template.build is missing)',
      );
    }
    if (!o.name) throw new CliError('--name is required: the name of the template to build, e.g. --name my-tools');
    await build({ ...connection(), file: o.file ?? 'Dockerfile', name: o.name, context: o.context ?? '.' });
  });
