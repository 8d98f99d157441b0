// Keyset pagination: a cursor is the (created_at, id) of the last row returned, opaque to clients.
import { invalidArgument } from './errors.js';

export interface Page<T> {
  items: T[];
  /** Pass back as `cursor` to get the next page; null when this was the last page. */
  nextCursor: string | null;
}

export interface PageRequest {
  /** Rows per page: 1..1000, default 100. */
  limit?: number;
  cursor?: string | null;
}

export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;

export function pageLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
    throw invalidArgument(`limit must be an integer from 1 to ${MAX_PAGE_SIZE}, got ${limit}`);
  }
  return limit;
}

export interface CursorKey {
  at: number;
  id: string;
}

export function encodeCursor(key: CursorKey): string {
  return Buffer.from(JSON.stringify([key.at, key.id])).toString('base64url');
}

export function decodeCursor(cursor: string): CursorKey {
  try {
    const v: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(v) && v.length === 2 && Number.isSafeInteger(v[0]) && typeof v[1] === 'string') {
      return { at: v[0] as number, id: v[1] as string };
    }
  } catch {
    // fall through to the error below
  }
  throw invalidArgument('cursor is not valid: pass back the nextCursor of the previous page unchanged');
}

/** Splits a `limit + 1` query result into a page and the cursor after it. */
export function toPage<R, T>(rows: R[], limit: number, key: (row: R) => CursorKey, map: (row: R) => T): Page<T> {
  const more = rows.length > limit;
  const kept = more ? rows.slice(0, limit) : rows;
  const last = kept[kept.length - 1];
  return { items: kept.map(map), nextCursor: more && last ? encodeCursor(key(last)) : null };
}
