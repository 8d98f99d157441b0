// `wrenn snapshot create|ls|rm` and `wrenn template ls|rm|build`.
import { buildProgress } from '@wrenn/protocol/contract';
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
  tags: t.tags,
});

function table(list: TemplateInfo[], empty: string): void {
  printTable(
    ['NAME', 'KIND', 'PARENT', 'TAGS', 'SIZE', 'CREATED'],
    list.map((t) => [
      t.name,
      t.builtin ? `${t.kind} (built-in)` : t.kind,
      t.parent ?? '-',
      t.tags.join(',') || '-',
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
      // name:tag removes that tag (the build goes when no tag keeps it); a name deletes the template.
      const colon = n.indexOf(':');
      if (colon > 0) {
        await Template.removeTag(n.slice(0, colon), n.slice(colon + 1), conn);
        process.stderr.write(`removed tag ${n}\n`);
        continue;
      }
      await Template.delete(n, conn);
      process.stderr.write(`deleted template ${n}\n`);
    }
  });

export const templateTags = (name: string, o: { json?: boolean }) =>
  run(async () => {
    const tags = await Template.tags(name, connection());
    if (o.json)
      return printJson(tags.map((t) => ({ tag: t.tag, build_id: t.buildId, created_at: t.createdAt.toISOString() })));
    for (const t of tags) process.stdout.write(`${t.tag}\t${t.buildId}\t${t.createdAt.toISOString()}\n`);
  });

export const templateTag = (ref: string, tags: string[]) =>
  run(async () => {
    const r = await Template.assignTags(ref, tags, connection());
    process.stderr.write(`tagged build ${r.buildId}: ${r.tags.join(', ')}\n`);
  });

export interface TemplateBuildOpts {
  file?: string;
  name?: string;
  context?: string;
  buildArg?: string[];
}

/** --build-arg NAME=VALUE, or NAME alone for the value of NAME in this environment (as docker build does). */
function buildArgs(values: string[] | undefined): Record<string, string> | undefined {
  if (!values?.length) return undefined;
  const out: Record<string, string> = {};
  for (const v of values) {
    const i = v.indexOf('=');
    const name = i < 0 ? v : v.slice(0, i);
    if (name === '') throw new CliError(`--build-arg takes NAME=VALUE or NAME, got "${v}"`);
    if (i >= 0) out[name] = v.slice(i + 1);
    else if (process.env[name] !== undefined) out[name] = process.env[name]!;
  }
  return out;
}

/** Files of the build context (what COPY/ADD may read), by path relative to the context. */
async function contextFiles(dir: string): Promise<Record<string, Uint8Array>> {
  const { readdir, readFile, stat } = await import('node:fs/promises');
  const { join, relative } = await import('node:path');
  const out: Record<string, Uint8Array> = {};
  let total = 0;
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.name === '.git' || e.name === 'node_modules') continue;
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        total += (await stat(p)).size;
        if (total > 512 * 1024 * 1024)
          throw new CliError(`the build context ${dir} is over 512 MiB; build from a smaller directory (-c)`);
        out[relative(dir, p)] = new Uint8Array(await readFile(p));
      }
    }
  };
  await walk(dir);
  return out;
}

/** `wrenn template build`: uploads the Dockerfile and its context, streams the build log. */
export const templateBuild = (o: TemplateBuildOpts) =>
  run(async () => {
    if (!o.name) throw new CliError('--name is required: the name of the template to build, e.g. --name my-tools');
    const { readFileSync, statSync } = await import('node:fs');
    const file = o.file ?? 'Dockerfile';
    let dockerfile: string;
    try {
      dockerfile = readFileSync(file, 'utf8');
    } catch {
      throw new CliError(`cannot read the Dockerfile ${file}: pass its path with -f`);
    }
    const context = o.context ?? '.';
    if (!statSync(context, { throwIfNoEntry: false })?.isDirectory())
      throw new CliError(`the build context ${context} is not a directory (-c)`);
    const { buildTemplate, TemplateBuildError } = await import('@wrenn/sdk');
    try {
      const b = await buildTemplate({
        ...connection(),
        name: o.name,
        dockerfile,
        files: await contextFiles(context),
        ...(o.buildArg?.length ? { buildArgs: buildArgs(o.buildArg) } : {}),
        onLog: (t) => process.stderr.write(t),
      });
      const p = buildProgress(b.logs);
      const cached = p.steps.filter((st) => st.state === 'cached').length;
      process.stderr.write(`built ${b.template}: ${p.total ?? 0} steps, ${cached} from the layer cache\n`);
      process.stdout.write(`${b.template}\n`);
      if (process.stderr.isTTY)
        process.stderr.write(`start capsules from it with: wrenn capsule create --template ${b.template}\n`);
    } catch (err) {
      // The log (with the failing step's output) has been streamed already; end with the reason.
      if (err instanceof TemplateBuildError) throw new CliError(`template build failed: ${err.message}`);
      throw err;
    }
  });
