// The Debian mirror this host already uses, read from its apt sources at run time (never
// hard-coded): deb822 files in /etc/apt/sources.list.d/*.sources, then one-line sources.list files.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface DebianSource {
  uri: string;
  suites: string[];
}

export function parseDeb822(text: string): DebianSource[] {
  const out: DebianSource[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    for (const line of stanza.split('\n')) {
      if (line.startsWith('#')) continue;
      const m = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
      if (m?.[1] && m[2] !== undefined) fields.set(m[1].toLowerCase(), m[2].trim());
    }
    if (!(fields.get('types') ?? '').split(/\s+/).includes('deb')) continue;
    if ((fields.get('enabled') ?? 'yes').toLowerCase() === 'no') continue;
    const suites = (fields.get('suites') ?? '').split(/\s+/).filter(Boolean);
    for (const uri of (fields.get('uris') ?? '').split(/\s+/).filter(Boolean)) out.push({ uri, suites });
  }
  return out;
}

export function parseOneLine(text: string): DebianSource[] {
  const out: DebianSource[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line);
    if (m?.[1] && m[2]) out.push({ uri: m[1], suites: [m[2]] });
  }
  return out;
}

/** The mirror that serves `suite` itself (not -security / -updates), or a clear error. */
export async function findDebianMirror(suite: string, etcApt = '/etc/apt'): Promise<string> {
  const sources: DebianSource[] = [];
  const dir = join(etcApt, 'sources.list.d');
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const n of names.sort()) {
    const text = await readFile(join(dir, n), 'utf8').catch(() => '');
    if (n.endsWith('.sources')) sources.push(...parseDeb822(text));
    else if (n.endsWith('.list')) sources.push(...parseOneLine(text));
  }
  sources.push(...parseOneLine(await readFile(join(etcApt, 'sources.list'), 'utf8').catch(() => '')));
  const hit = sources.find((s) => s.suites.includes(suite) && /^https?:\/\//.test(s.uri));
  if (!hit) {
    throw new Error(
      `no apt source for the Debian suite "${suite}" in ${etcApt}/sources.list(.d): add one (Types: deb, URIs: <mirror>, Suites: ${suite}) so the base template can be built`,
    );
  }
  return hit.uri;
}
