// User-defined file metadata kept as `user.e2b.<key>` extended attributes (E2B's envd 0.6.2+).
import { createRequire } from 'node:module';

type XattrModule = typeof import('@napi-rs/xattr');

// The xattr addon is native: a capsule whose libc has no prebuilt binary still runs envd, just
// without file metadata (reads return none, writes keep the file and skip the metadata).
let xattr: XattrModule | null | undefined;
function addon(): XattrModule | null {
  if (xattr === undefined) {
    try {
      xattr = createRequire(import.meta.url)('@napi-rs/xattr') as XattrModule;
    } catch (err) {
      xattr = null;
      process.emitWarning(
        `file metadata disabled: cannot load @napi-rs/xattr (${err instanceof Error ? err.message : String(err)})`,
      );
    }
  }
  return xattr;
}

/** Whether this envd can keep file metadata at all. */
export function metadataSupported(): boolean {
  return addon() !== null;
}

export const METADATA_PREFIX = 'user.e2b.';
const MAX_KEY = 255 - METADATA_PREFIX.length;
const MAX_TOTAL = 4096;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Checks a metadata set; returns an error message or undefined. */
export function metadataProblem(metadata: Record<string, string>): string | undefined {
  let total = 0;
  for (const [k, v] of Object.entries(metadata)) {
    if (!k) return 'metadata key must not be empty';
    if (k.length > MAX_KEY) return `metadata key "${k}" exceeds ${MAX_KEY} bytes`;
    if (!/^[\x20-\x7e]*$/.test(k)) return `metadata key "${k}" must be printable US-ASCII`;
    if (!/^[\x20-\x7e]*$/.test(v)) return `metadata value for key "${k}" must be printable US-ASCII`;
    total += METADATA_PREFIX.length + k.length + v.length;
  }
  if (total > MAX_TOTAL) return `total metadata size ${total} exceeds ${MAX_TOTAL} bytes`;
  return undefined;
}

function unsupported(err: unknown): boolean {
  const msg = err instanceof Error ? err.message : String(err);
  return /not supported|ENOTSUP|EOPNOTSUPP/i.test(msg);
}

/** Reads the metadata of p (following symlinks); empty when none or unsupported. Never throws. */
export async function readMetadata(p: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const x = addon();
  if (!x) return out;
  let names: string[];
  try {
    names = await x.listAttributes(p);
  } catch {
    return out;
  }
  for (const name of names) {
    if (!name.startsWith(METADATA_PREFIX)) continue;
    try {
      const value = await x.getAttribute(p, name);
      if (value === null) continue;
      // Values set from inside the capsule may hold any bytes; proto strings must be UTF-8.
      out[name.slice(METADATA_PREFIX.length)] = utf8.decode(value);
    } catch {
      // skip unreadable or non-UTF-8 values
    }
  }
  return out;
}

/**
 * Replaces p's metadata with exactly `metadata` (keys absent are removed: an overwritten file keeps
 * its xattrs across truncation otherwise). Returns false when the filesystem has no xattrs.
 */
export async function writeMetadata(p: string, metadata: Record<string, string>): Promise<boolean> {
  const x = addon();
  if (!x) return false;
  let existing: string[];
  try {
    existing = await x.listAttributes(p);
  } catch (err) {
    if (unsupported(err)) return false;
    throw err;
  }
  for (const name of existing) {
    if (name.startsWith(METADATA_PREFIX) && !(name.slice(METADATA_PREFIX.length) in metadata)) {
      await x.removeAttribute(p, name).catch(() => undefined);
    }
  }
  for (const [k, v] of Object.entries(metadata)) {
    try {
      await x.setAttribute(p, METADATA_PREFIX + k, v);
    } catch (err) {
      if (unsupported(err)) return false;
      throw err;
    }
  }
  return true;
}
