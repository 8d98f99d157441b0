// Reads a kernel module's `depends=` entry from its .modinfo strings (no kmod tools needed).
import { readFile } from 'node:fs/promises';

export async function readModuleDepends(koPath: string): Promise<string[]> {
  const buf = await readFile(koPath);
  const key = Buffer.from('\0depends=');
  const at = buf.indexOf(key);
  if (at < 0) return [];
  const start = at + key.length;
  const end = buf.indexOf(0, start);
  const value = buf.subarray(start, end < 0 ? undefined : end).toString('latin1');
  return value
    .split(',')
    .map((s) => s.trim().replace(/-/g, '_'))
    .filter(Boolean);
}
