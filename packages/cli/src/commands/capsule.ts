// `wrenn capsule create|ls|info|rm|pause|resume|ping` (network: network.ts).
import {
  CAPSULE_PLAIN_FIELDS,
  CAPSULE_LIMITS as L,
  snakeCase,
  TIMEOUT_ACTIONS,
  type TimeoutAction,
} from '@wrenn/protocol';
import { Capsule, type CapsuleInfo, pullImage } from '@wrenn/sdk';
import { ago, CliError, connection, parseIntOption, parsePairs, printJson, printTable, run } from './support.js';
import { parseVolumeFlags } from './volume.js';

/**
 * The capsule as the API's JSON spells it, for --json: the SDK's CapsuleInfo with its keys back in
 * snake_case and its Dates as ISO strings, the id as `id` and the plain fields at the top, so every
 * field of the contract shows without this file naming it.
 */
export function infoJson(c: CapsuleInfo): Record<string, unknown> {
  const { capsuleId, plainFields, ...fields } = c;
  const out: Record<string, unknown> = { id: capsuleId };
  for (const [key, value] of Object.entries(fields))
    out[snakeCase(key)] = value instanceof Date ? value.toISOString() : value;
  return { ...out, ...plainFields };
}

export interface CreateOpts {
  template?: string;
  image?: string;
  registryUser?: string;
  vcpus?: string;
  memory?: string;
  timeout?: string;
  onTimeout?: string;
  autoResume?: boolean;
  env?: string[];
  metadata?: string[];
  field?: string[];
  volume?: string[];
  allowOut?: string[];
  denyOut?: string[];
  private?: boolean;
  maskHost?: string;
  json?: boolean;
}

export const create = (o: CreateOpts) =>
  run(async () => {
    // The contract's bounds, so a bad value is refused before any request.
    const vcpus = parseIntOption('--vcpus', o.vcpus, L.minVcpus, L.maxVcpus);
    const memoryMb = parseIntOption('--memory', o.memory, L.minMemoryMb, L.maxMemoryMb);
    const timeoutSec = parseIntOption('--timeout', o.timeout, 0, L.maxTimeoutSec);
    const envs = parsePairs('--env', o.env);
    const metadata = parsePairs('--metadata', o.metadata);
    // The names here; the values are checked by the server against the contract (a 400 names the field).
    const plainFields = parsePairs('--field', o.field);
    const known = Object.keys(CAPSULE_PLAIN_FIELDS);
    for (const key of Object.keys(plainFields ?? {}))
      if (!known.includes(key)) throw new CliError(`--field takes one of ${known.join(', ')}, got '${key}'`);
    const volumeMounts = parseVolumeFlags(o.volume);
    if (o.onTimeout !== undefined && !(TIMEOUT_ACTIONS as readonly string[]).includes(o.onTimeout))
      throw new CliError(`--on-timeout must be one of ${TIMEOUT_ACTIONS.join(', ')}, got '${o.onTimeout}'`);
    // The password never on the command line (other users of the machine can read it there).
    const password = process.env.WRENN_REGISTRY_PASSWORD;
    if (o.registryUser && !password)
      throw new CliError('--registry-user needs the password or token in WRENN_REGISTRY_PASSWORD');
    const registryCredentials = o.image && o.registryUser && password ? { username: o.registryUser, password } : null;
    // The image first, its progress (layers, MiB) on stderr; the create then finds the layers cached.
    if (o.image)
      await pullImage(o.image, {
        ...connection(),
        ...(registryCredentials ? { registryCredentials } : {}),
        onProgress: (line) => process.stderr.write(`${line}\n`),
      });
    const c = await Capsule.create({
      ...connection(),
      ...(o.template ? { template: o.template } : {}),
      ...(o.image ? { image: o.image } : {}),
      ...(registryCredentials ? { registryCredentials } : {}),
      ...(vcpus !== undefined ? { vcpus } : {}),
      ...(memoryMb !== undefined ? { memoryMb } : {}),
      ...(timeoutSec !== undefined ? { timeoutSec } : {}),
      ...(o.onTimeout !== undefined ? { timeoutAction: o.onTimeout as TimeoutAction } : {}),
      ...(o.autoResume ? { autoResume: true } : {}),
      ...(envs ? { envs } : {}),
      ...(metadata ? { metadata } : {}),
      ...(plainFields ? { plainFields } : {}),
      ...(volumeMounts ? { volumeMounts } : {}),
      ...(o.allowOut || o.denyOut || o.private || o.maskHost !== undefined
        ? {
            network: {
              ...(o.allowOut ? { allowOut: o.allowOut } : {}),
              ...(o.denyOut ? { denyOut: o.denyOut } : {}),
              ...(o.private ? { allowPublicTraffic: false } : {}),
              ...(o.maskHost !== undefined ? { maskRequestHost: o.maskHost } : {}),
            },
          }
        : {}),
    });
    if (o.json) printJson(infoJson(c.info));
    // The id alone on stdout, so `id=$(wrenn capsule create)` works; the hint goes to stderr.
    else {
      process.stdout.write(`${c.capsuleId}\n`);
      if (process.stderr.isTTY)
        process.stderr.write(
          `run commands with: wrenn exec ${c.capsuleId} -- <command>, or open a shell: wrenn shell ${c.capsuleId}\n`,
        );
      // The token only this answer shows (besides `capsule info --json`): needed to reach its ports.
      if (c.info.trafficAccessToken)
        process.stderr.write(`traffic access token (header e2b-traffic-access-token): ${c.info.trafficAccessToken}\n`);
    }
  });

export const list = (o: { state?: string; template?: string; metadata?: string[]; json?: boolean }) =>
  run(async () => {
    const metadata = parsePairs('--metadata', o.metadata);
    const states = o.state?.split(',').map((s) => s.trim()) as CapsuleInfo['state'][] | undefined;
    const caps = await Capsule.list({
      ...connection(),
      ...(states ? { state: states } : {}),
      ...(o.template ? { template: o.template } : {}),
      ...(metadata ? { metadata } : {}),
    });
    if (o.json) return printJson(caps.map(infoJson));
    printTable(
      ['ID', 'STATE', 'TEMPLATE', 'VCPUS', 'MEMORY', 'CREATED', 'EXPIRES'],
      caps.map((c) => [
        c.capsuleId,
        c.state,
        c.template,
        String(c.vcpus),
        `${c.memoryMb} MiB`,
        ago(c.createdAt),
        c.expiresAt ? ago(c.expiresAt) : 'never',
      ]),
      'no capsules; create one with `wrenn capsule create`',
    );
  });

export const info = (id: string, o: { json?: boolean }) =>
  run(async () => {
    const c = await Capsule.get(id, connection());
    if (o.json) return printJson(infoJson(c));
    const rows: [string, string][] = [
      ['id', c.capsuleId],
      ['state', c.state],
      ['template', c.template],
      ['runtime', c.runtime],
      ['vcpus', String(c.vcpus)],
      ['memory', `${c.memoryMb} MiB`],
      ['timeout', c.timeoutSec === 0 ? 'never' : `${c.timeoutSec}s (then ${c.timeoutAction})`],
      ['created', `${c.createdAt.toISOString()} (${ago(c.createdAt)})`],
      ['expires', c.expiresAt ? `${c.expiresAt.toISOString()} (${ago(c.expiresAt)})` : 'never'],
      [
        'metadata',
        Object.entries(c.metadata)
          .map(([k, v]) => `${k}=${v}`)
          .join(', ') || '-',
      ],
    ];
    for (const [k, v] of Object.entries(c.plainFields)) rows.push([k, String(v)]);
    if (c.error) rows.push(['error', c.error]);
    process.stdout.write(`${rows.map(([k, v]) => `${`${k}:`.padEnd(10)} ${v}`).join('\n')}\n`);
  });

export const remove = (ids: string[]) =>
  run(async () => {
    const conn = connection();
    for (const id of ids) {
      await Capsule.destroy(id, conn);
      process.stderr.write(`destroyed ${id}\n`);
    }
  });

export const pause = (id: string, o: { hibernate?: boolean }) =>
  run(async () => {
    const c = await Capsule.connect(id, { ...connection(), autoResume: false });
    const r = await c.pause({ mode: o.hibernate ? 'hibernate' : 'freeze' });
    process.stderr.write(`${id} is ${r.state}; resume it with \`wrenn capsule resume ${id}\`\n`);
  });

export const resume = (id: string, o: { timeout?: string }) =>
  run(async () => {
    const timeoutSec = parseIntOption('--timeout', o.timeout, 0, L.maxTimeoutSec);
    const c = await Capsule.connect(id, { ...connection(), autoResume: false });
    if (c.info.state === 'running') throw new CliError(`capsule ${id} is already running`);
    const r = await c.resume(timeoutSec !== undefined ? { timeoutSec } : {});
    process.stderr.write(`${id} is ${r.state}\n`);
  });

export const ping = (id: string) =>
  run(async () => {
    const c = await Capsule.connect(id, { ...connection(), autoResume: false });
    const r = await c.ping();
    process.stdout.write(`${id} ${r.state}; expires ${r.expiresAt ? ago(r.expiresAt) : 'never'}\n`);
  });
