// User-defined file metadata kept as `user.e2b.<key>` extended attributes (E2B's envd 0.6.2+).
// The attributes are read and written by @wrenn/native's fsAsUser (user-fs.ts), as the requesting
// user and through the fd or path it checked; this module validates and decodes them.
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

/** The metadata in a file's `user.e2b.*` attributes ([name, value] pairs); values that are not UTF-8 are left out. */
export function decodeMetadata(xattrs: [string, Buffer][]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of xattrs) {
    if (!name.startsWith(METADATA_PREFIX)) continue;
    try {
      // Values set from inside the capsule may hold any bytes; proto strings must be UTF-8.
      out[name.slice(METADATA_PREFIX.length)] = utf8.decode(value);
    } catch {
      // skip non-UTF-8 values
    }
  }
  return out;
}
