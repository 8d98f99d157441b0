// Conversions between SQL column values and domain values, the same for both dialects.
import { invalidArgument } from './errors.js';

export const toDate = (ms: number): Date => new Date(Number(ms));
export const toDateOrNull = (ms: number | null): Date | null => (ms === null ? null : new Date(Number(ms)));
export const toMs = (d: Date | number): number => (typeof d === 'number' ? d : d.getTime());
export const toMsOrNull = (d: Date | number | null | undefined): number | null => (d == null ? null : toMs(d));

export function parseJson<T>(text: string, fallback: T): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    return fallback;
  }
}

/** Validates a string -> string map (capsule metadata, environment variables). */
export function stringMap(value: Record<string, string> | undefined, what: string): Record<string, string> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw invalidArgument(`${what} must be an object of strings`);
  for (const [k, v] of Object.entries(value)) {
    if (k.length === 0) throw invalidArgument(`${what} keys must not be empty`);
    if (typeof v !== 'string') throw invalidArgument(`${what}.${k} must be a string, got ${typeof v}`);
  }
  return value;
}

export function positiveInt(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value <= 0)
    throw invalidArgument(`${what} must be a positive integer, got ${value}`);
  return value;
}

export function nonNegativeInt(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 0)
    throw invalidArgument(`${what} must be a non-negative integer, got ${value}`);
  return value;
}

export function nonEmpty(value: string, what: string): string {
  if (typeof value !== 'string' || value.trim().length === 0)
    throw invalidArgument(`${what} must be a non-empty string`);
  return value;
}

export function oneOf<T extends string>(value: string, allowed: readonly T[], what: string): T {
  if (!(allowed as readonly string[]).includes(value))
    throw invalidArgument(`${what} must be one of ${allowed.join(', ')}, got '${value}'`);
  return value as T;
}
