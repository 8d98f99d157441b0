// A small, spec-following Fetch `Headers` class for the envd process.
// Node 20 defines the global `Headers` lazily from its bundled undici, and the first touch also
// compiles undici's llhttp WebAssembly parser: about 12 MB of RSS that envd keeps for its whole
// life although it never uses fetch. Connect RPC only needs the Headers class itself, so envd
// installs this one before serving (installLiteHeaders) and undici is never loaded.
// On Node 22 and later the global is a lazy data property that loads undici when touched in any
// way, redefining it included (37 ms on 22, 60-100 ms on 24: most of envd's start-up gap on those
// lines). So envd's bundle never touches it: scripts/bundle-envd.mjs injects LiteHeaders for every
// free `Headers` in the bundle (esbuild inject, from the `Headers` export below) and defines
// WRENN_ENVD_BUNDLE, and installLiteHeaders() then does nothing.

// RFC 9110 token characters: what a header name may contain.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
type HeadersInit = ConstructorParameters<typeof Headers>[0];
type HeadersIterator<T> = IterableIterator<T>;
const EDGE_WHITESPACE = /^[\t\n\r ]+|[\t\n\r ]+$/g;

function checkName(name: string): string {
  const n = String(name);
  if (!TOKEN.test(n)) throw new TypeError(`Headers: invalid header name "${n}"`);
  return n.toLowerCase();
}

function checkValue(value: string): string {
  const v = String(value).replace(EDGE_WHITESPACE, '');
  if (/[\0\r\n]/.test(v)) throw new TypeError('Headers: header value contains NUL, CR or LF');
  return v;
}

export class LiteHeaders implements Headers {
  readonly #values = new Map<string, string[]>();

  constructor(init?: HeadersInit | null) {
    if (init === undefined || init === null) return;
    if (typeof init !== 'object') throw new TypeError('Headers: init must be an object, an array of pairs or Headers');
    if (Symbol.iterator in init) {
      for (const pair of init as Iterable<Iterable<string>>) {
        const [name, value, ...rest] = [...pair];
        if (name === undefined || value === undefined || rest.length > 0)
          throw new TypeError('Headers: each init pair must have exactly two items');
        this.append(name, value);
      }
    } else {
      for (const [name, value] of Object.entries(init as Record<string, string>)) this.append(name, value);
    }
  }

  append(name: string, value: string): void {
    const n = checkName(name);
    const v = checkValue(value);
    const list = this.#values.get(n);
    if (list) list.push(v);
    else this.#values.set(n, [v]);
  }

  delete(name: string): void {
    this.#values.delete(checkName(name));
  }

  get(name: string): string | null {
    return this.#values.get(checkName(name))?.join(', ') ?? null;
  }

  getSetCookie(): string[] {
    return [...(this.#values.get('set-cookie') ?? [])];
  }

  has(name: string): boolean {
    return this.#values.has(checkName(name));
  }

  set(name: string, value: string): void {
    this.#values.set(checkName(name), [checkValue(value)]);
  }

  forEach(callback: (value: string, key: string, parent: Headers) => void, thisArg?: unknown): void {
    for (const [key, value] of this) callback.call(thisArg, value, key, this);
  }

  /** Sorted by name; set-cookie values one by one, others joined with ", " (as the Fetch spec says). */
  *entries(): HeadersIterator<[string, string]> {
    for (const name of [...this.#values.keys()].sort()) {
      const list = this.#values.get(name);
      if (!list) continue; // deleted while iterating
      if (name === 'set-cookie') for (const v of list) yield [name, v];
      else yield [name, list.join(', ')];
    }
  }

  *keys(): HeadersIterator<string> {
    for (const [k] of this.entries()) yield k;
  }

  *values(): HeadersIterator<string> {
    for (const [, v] of this.entries()) yield v;
  }

  [Symbol.iterator](): HeadersIterator<[string, string]> {
    return this.entries();
  }

  get [Symbol.toStringTag](): string {
    return 'Headers';
  }
}

/** What esbuild injects for the bundle's free `Headers` (scripts/bundle-envd.mjs). */
export { LiteHeaders as Headers };

/** `true` in envd's bundle (an esbuild define); undeclared when envd runs unbundled. */
declare const WRENN_ENVD_BUNDLE: boolean | undefined;

/** Makes LiteHeaders the global Headers of this process. Call before anything touches Headers. */
export function installLiteHeaders(): void {
  // The bundle's Headers already is LiteHeaders, and touching the global would load undici.
  if (typeof WRENN_ENVD_BUNDLE !== 'undefined') return;
  Object.defineProperty(globalThis, 'Headers', {
    value: LiteHeaders,
    writable: true,
    configurable: true,
    enumerable: false,
  });
}
