import { promisify } from 'node:util';
import { deflateRaw } from 'node:zlib';

const deflateRawAsync = promisify(deflateRaw);

// Accept-Encoding negotiation for GET /files as E2B's envd does it (gzip or identity, RFC 7231 q-values).
export type Encoding = 'gzip' | 'identity';

interface Weighted {
  name: string;
  q: number;
}

function parse(header: string): Weighted[] {
  return header
    .split(',')
    .map((part) => {
      const [name = '', ...params] = part.split(';').map((s) => s.trim());
      let q = 1;
      for (const p of params) {
        if (p.toLowerCase().startsWith('q=')) {
          const v = Number.parseFloat(p.slice(2));
          if (!Number.isNaN(v)) q = v;
        }
      }
      return { name: name.toLowerCase(), q };
    })
    .filter((w) => w.name !== '');
}

function identityRejected(list: Weighted[]): boolean {
  let rejected = false;
  let accepted = false;
  let wildcardRejected = false;
  for (const w of list) {
    if (w.name === 'identity') {
      if (w.q === 0) rejected = true;
      else accepted = true;
    } else if (w.name === '*' && w.q === 0) wildcardRejected = true;
  }
  return rejected || (wildcardRejected && !accepted);
}

/** The encoding to answer with, or undefined when nothing acceptable is supported (406). */
export function negotiateEncoding(header: string | undefined): Encoding | undefined {
  if (!header) return 'identity';
  const list = parse(header);
  const noIdentity = identityRejected(list);
  for (const w of [...list].sort((a, b) => b.q - a.q)) {
    if (w.q === 0) continue;
    if (w.name === 'identity') return 'identity';
    if (w.name === '*') return noIdentity ? 'gzip' : 'identity';
    if (w.name === 'gzip') return 'gzip';
  }
  return noIdentity ? undefined : 'identity';
}

export function identityAcceptable(header: string | undefined): boolean {
  return !header || !identityRejected(parse(header));
}

/** Whether gzip is worth it: a fast deflate of the file's leading sample saves at least 10%. */
export async function compressible(sample: Buffer): Promise<boolean> {
  if (sample.length === 0) return true;
  return (await deflateRawAsync(sample, { level: 1 })).length < sample.length * 0.9;
}
