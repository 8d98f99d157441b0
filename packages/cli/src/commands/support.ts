// Shared pieces of the user commands: connection settings (flags, environment, `wrenn login`
// config file), friendly errors with a next step, and table/JSON output.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { ConnectionOptions } from '@wrenn/sdk';

export const DEFAULT_BASE_URL = 'http://127.0.0.1:8000';

/** An error whose message is already what the user should read (no stack trace). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export function configPath(): string {
  const base = process.env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(base, 'wrenn', 'config.json');
}

export interface StoredConfig {
  apiKey?: string;
  baseUrl?: string;
}

export function readConfig(): StoredConfig {
  try {
    const j = JSON.parse(readFileSync(configPath(), 'utf8')) as StoredConfig;
    return typeof j === 'object' && j ? j : {};
  } catch {
    return {};
  }
}

/** Environment first (WRENN_API_KEY, WRENN_BASE_URL), then the file `wrenn login` wrote. */
export function connection(): ConnectionOptions & { apiKey: string; baseUrl: string } {
  const file = readConfig();
  const apiKey = process.env.WRENN_API_KEY || file.apiKey || '';
  const baseUrl = process.env.WRENN_BASE_URL || file.baseUrl || DEFAULT_BASE_URL;
  if (!apiKey) {
    throw new CliError(
      'no API key: run `wrenn login` (or set WRENN_API_KEY); `wrenn up` prints the admin key when it starts',
    );
  }
  return { apiKey, baseUrl };
}

/** Adds the next step to the SDK's errors, which already carry the server's message. */
export async function friendly(err: unknown): Promise<never> {
  if (err instanceof CliError) throw err;
  const sdk = await import('@wrenn/sdk');
  const msg = err instanceof Error ? err.message : String(err);
  if (err instanceof sdk.AuthenticationError)
    throw new CliError(
      `${msg}\n  the API key was refused: run \`wrenn login\` with a valid key (or fix WRENN_API_KEY)`,
    );
  if (err instanceof sdk.CapsuleGoneError)
    throw new CliError(`${msg}\n  create a new one with \`wrenn capsule create\``);
  if (err instanceof sdk.NotFoundError && /capsule/i.test(msg))
    throw new CliError(`${msg}\n  list your capsules with \`wrenn capsule ls\``);
  if (err instanceof sdk.NotFoundError && /snapshot|template/i.test(msg))
    throw new CliError(`${msg}\n  list them with \`wrenn template ls\` or \`wrenn snapshot ls\``);
  if (err instanceof sdk.ConflictError && /paused|hibernated/.test(msg)) {
    const id = /\b(cl-[0-9a-z]+)\b/.exec(msg)?.[1] ?? '<id>';
    throw new CliError(`${msg}\n  resume it with \`wrenn capsule resume ${id}\``);
  }
  if (err instanceof sdk.ConnectionError) throw new CliError(`${msg}`);
  if (err instanceof sdk.WrennError) throw new CliError(msg);
  throw err;
}

/** Runs a command body, turning errors into CliErrors with a next step. */
export async function run(fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    await friendly(err);
  }
}

export function printJson(v: unknown): void {
  process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
}

/** Left-aligned columns separated by two spaces. */
export function printTable(headers: string[], rows: string[][], empty: string): void {
  if (rows.length === 0) {
    process.stderr.write(`${empty}\n`);
    return;
  }
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ');
  process.stdout.write(`${[line(headers), ...rows.map(line)].join('\n')}\n`);
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = -1;
  do {
    v /= 1024;
    u++;
  } while (v >= 1024 && u < units.length - 1);
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

export function ago(d: Date | null): string {
  if (!d) return '-';
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  const abs = Math.abs(s);
  const text =
    abs < 60
      ? `${abs}s`
      : abs < 3600
        ? `${Math.floor(abs / 60)}m`
        : abs < 86400
          ? `${Math.floor(abs / 3600)}h`
          : `${Math.floor(abs / 86400)}d`;
  return s >= 0 ? `${text} ago` : `in ${text}`;
}

export function parseIntOption(name: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new CliError(`${name} must be a whole number from ${min} to ${max}, got "${value}"`);
  return n;
}

/** key=value pairs from repeatable options. */
export function parsePairs(name: string, values: string[] | undefined): Record<string, string> | undefined {
  if (!values || values.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const v of values) {
    const i = v.indexOf('=');
    if (i <= 0) throw new CliError(`${name} takes KEY=VALUE, got "${v}"`);
    out[v.slice(0, i)] = v.slice(i + 1);
  }
  return out;
}

export const collect = (v: string, prev: string[] = []) => [...prev, v];

/** Quotes words for /bin/sh so `wrenn exec id -- ls "a b"` runs what was typed. */
export function shellJoin(words: string[]): string {
  if (words.length === 1) return words[0]!;
  return words.map((w) => (/^[A-Za-z0-9_./:=@%+,-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`)).join(' ');
}
