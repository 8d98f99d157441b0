// What the live template build suites share: following a build's log to its end, and removing
// every template the builds made from the shared image cache.
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

/**
 * Deletes every template the builds made (final templates and layers): they live in the shared
 * image cache, which outlives this system. A layer is refused while a template stacks on it, so
 * the newest go first, and deletion repeats until nothing is left or nothing more can go.
 */
export async function removeTeamTemplates(sys: LiveSystem, call: Call): Promise<void> {
  for (let pass = 0; pass < 50; pass++) {
    const rows = await sys.cp.ctx.database.db
      .selectFrom('templates')
      .select('name')
      .where('team_id', 'is not', null)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .execute();
    if (rows.length === 0) return;
    let removed = 0;
    for (const r of rows) if ((await call('DELETE', `/v1/templates/${r.name}`)).status === 204) removed++;
    if (removed === 0)
      throw new Error(`templates left behind in the shared image cache: ${rows.map((r) => r.name).join(', ')}`);
  }
}
