// camelCase views of the contract's snake_case JSON. Code holds a capsule, template or volume entry
// in camelCase with Dates; deriving those types from the JSON schemas (instead of writing the
// fields out again in the control plane's rows and the SDK's objects) makes a field added to a
// schema a compile error wherever an object of it is built, until that code fills it in.

/** `memory_mb` → `memoryMb`. */
export type CamelCase<S extends string> = S extends `${infer H}_${infer T}` ? `${H}${Capitalize<CamelCase<T>>}` : S;

/** T with camelCase keys, its date-time strings (the keys D) as Dates; null stays null. */
export type Camelized<T, D extends keyof T = never> = {
  [K in keyof T as CamelCase<K & string>]: K extends D ? Exclude<T[K], string> | Date : T[K];
};

/** `memoryMb` → `memory_mb`: the way back, for printing an object as the API's JSON. */
export const snakeCase = (key: string): string => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** `memory_mb` → `memoryMb`, as CamelCase spells it at the type level. */
export const camelCase = (key: string): string => key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** The object's own keys in camelCase, one level deep (the values, nested objects too, as they are). */
export function camelKeys<T extends object>(o: T): Camelized<T> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(o)) out[camelCase(key)] = value;
  return out as Camelized<T>;
}
