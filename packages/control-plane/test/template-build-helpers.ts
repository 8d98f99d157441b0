// What the live template build suites share: following a build's log to its end (the systems'
// close removes every template the builds made from the shared image cache).
import assert from 'node:assert/strict';
import type { LiveSystem } from './e2b-live.js';
import type { client } from './native-helpers.js';

type Call = ReturnType<typeof client>;

/** The build record's fields these tests read. */
export interface BuildRecord {
  status: string;
  error: string;
  logs: string;
}

/** Streams the build's log until the build ends; returns the text and the final build record. */
export async function follow(
  sys: LiveSystem,
  call: Call,
  buildId: string,
): Promise<{ streamed: string; build: BuildRecord }> {
  const res = await fetch(`${sys.url}/v1/templates/builds/${buildId}/logs`, { headers: { 'x-api-key': sys.adminKey } });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
  const streamed = await res.text();
  const b = await call('GET', `/v1/templates/builds/${buildId}`);
  assert.equal(b.status, 200, b.text);
  return { streamed, build: b.body };
}
