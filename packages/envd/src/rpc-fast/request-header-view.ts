// A Fetch `Headers` over a Node request's header object, for the Start fast path: a call reads two
// or three headers, so copying all of them into a Headers object (as connect-es does per call) is
// wasted work. get/has read the Node object; anything else works on a full copy made on first use.
// Pseudo-headers (h2 ":path", ...) are left out, as connect-es leaves them out.
import type { IncomingHttpHeaders } from 'node:http';

type NodeHeaders = IncomingHttpHeaders | Record<string, string | string[] | number | undefined>;

export class RequestHeaderView implements Headers {
  #copy: Headers | undefined;

  constructor(private readonly raw: NodeHeaders) {}

  get(name: string): string | null {
    if (this.#copy) return this.#copy.get(name);
    const key = name.toLowerCase();
    if (key.startsWith(':')) return this.full().get(name); // invalid name: Headers throws
    const v = this.raw[key];
    if (v === undefined) return null;
    return Array.isArray(v) ? v.join(', ') : String(v);
  }

  has(name: string): boolean {
    return this.get(name) !== null;
  }

  private full(): Headers {
    if (!this.#copy) {
      const h = new Headers();
      for (const [k, v] of Object.entries(this.raw)) {
        if (k.startsWith(':') || v === undefined) continue;
        if (Array.isArray(v)) for (const e of v) h.append(k, e);
        else h.append(k, String(v));
      }
      this.#copy = h;
    }
    return this.#copy;
  }

  append(name: string, value: string): void {
    this.full().append(name, value);
  }
  delete(name: string): void {
    this.full().delete(name);
  }
  set(name: string, value: string): void {
    this.full().set(name, value);
  }
  getSetCookie(): string[] {
    return this.full().getSetCookie();
  }
  forEach(callback: (value: string, key: string, parent: Headers) => void, thisArg?: unknown): void {
    this.full().forEach((v, k) => {
      callback.call(thisArg, v, k, this);
    });
  }
  entries(): ReturnType<Headers['entries']> {
    return this.full().entries();
  }
  keys(): ReturnType<Headers['keys']> {
    return this.full().keys();
  }
  values(): ReturnType<Headers['values']> {
    return this.full().values();
  }
  [Symbol.iterator](): ReturnType<Headers['entries']> {
    return this.full().entries();
  }
  get [Symbol.toStringTag](): string {
    return 'Headers';
  }
}
