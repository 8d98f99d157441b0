// LiteHeaders against Node's own (undici) Headers: the same operations give the same results.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LiteHeaders } from '../src/lite-headers.js';

type Op = (h: Headers) => unknown;

function outcome(make: () => Headers, ops: Op[]): unknown[] {
  const out: unknown[] = [];
  let h: Headers;
  try {
    h = make();
  } catch (err) {
    return [`ctor threw ${(err as Error).name}`];
  }
  for (const op of ops) {
    try {
      out.push(op(h));
    } catch (err) {
      out.push(`threw ${(err as Error).name}`);
    }
    out.push([...h]);
  }
  return out;
}

const inits: unknown[] = [
  undefined,
  { 'Content-Type': 'application/json', 'X-Access-Token': '  tok  ' },
  [
    ['a', '1'],
    ['A', '2'],
    ['set-cookie', 'x=1'],
    ['Set-Cookie', 'y=2'],
  ],
  [['only-one']],
  [['a', '1', 'extra']],
  { 'bad name': 'x' },
  { ok: 'line\nbreak' },
];

const ops: Op[] = [
  (h) => h.get('content-type'),
  (h) => h.get('A'),
  (h) => h.has('x-access-token'),
  (h) => h.append('Accept-Encoding', 'gzip'),
  (h) => h.append('accept-encoding', ' br '),
  (h) => h.get('accept-encoding'),
  (h) => h.set('Accept-Encoding', 'identity'),
  (h) => h.delete('a'),
  (h) => h.append('set-cookie', 'z=3'),
  (h) => h.get('set-cookie'),
  (h) => h.getSetCookie(),
  (h) => [...h.keys()],
  (h) => [...h.values()],
  (h) => {
    const seen: string[] = [];
    h.forEach((v, k) => {
      seen.push(`${k}=${v}`);
    });
    return seen;
  },
  (h) => h.get('bad name'),
  (h) => h.set('x', 'a\0b'),
  (h) => h.append('Connect-Timeout-Ms', 15000 as unknown as string),
  (h) => h.get('connect-timeout-ms'),
  (h) => new (h.constructor as typeof Headers)(h).get('accept-encoding'),
  (h) => Object.prototype.toString.call(h),
];

test('LiteHeaders behaves like the Fetch Headers of Node for what envd and Connect do with them', () => {
  for (const init of inits) {
    const lite = outcome(() => new LiteHeaders(init as HeadersInit) as unknown as Headers, ops);
    const real = outcome(() => new Headers(init as HeadersInit), ops);
    assert.deepEqual(lite, real, `init ${JSON.stringify(init)}`);
  }
});

type HeadersInit = ConstructorParameters<typeof Headers>[0];
