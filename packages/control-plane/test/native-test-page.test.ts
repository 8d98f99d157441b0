// The /test page in a real browser (Debian's chromium driven by playwright-core) against a live
// `wrenn up`: a wrong key is refused, then with the admin key the page creates a capsule, runs a
// command in it, pauses and resumes it, snapshots it, lists and deletes the snapshot and destroys
// the capsule. Network slot 15 (see testNetwork in e2b-live.ts).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { type Chromium, openChromium } from '../src/testing/chromium.js';
import { type LiveSystem, startLive } from './e2b-live.js';

interface CapsuleJson {
  state: string;
  memory_mb: number;
  metadata: Record<string, string>;
}
interface SnapshotList {
  snapshots: Array<{ name: string }>;
}

const SLOT = 15;

describe('the /test page in chromium against a live system', { timeout: 300_000 }, () => {
  let sys: LiveSystem;
  let browser: Chromium;
  let page: Page;

  before(async () => {
    browser = await openChromium('test-page');
    page = browser.page;
    sys = await startLive({ db: 'sqlite', slot: SLOT });
  });

  after(async () => {
    await browser?.close();
    await sys?.close();
  });

  const status = () => page.locator('#status');
  const row = () => page.locator('#capsules tr');

  test('a wrong key is refused with the API error', async () => {
    await page.goto(`${sys.url}/test`);
    await page.fill('#key', `wrn_${'0'.repeat(32)}`);
    await page.click('#save');
    await status().filter({ hasText: 'unauthenticated' }).waitFor();
    assert.equal(await status().getAttribute('class'), 'err');
  });

  test('create, exec, pause, resume, snapshot (create, list, delete) and destroy', async () => {
    await page.fill('#key', sys.adminKey);
    await page.click('#save');
    await status().filter({ hasText: 'check key: done' }).waitFor();
    assert.equal(await row().count(), 0);

    await page.fill('#template', 'minimal');
    await page.fill('#memory', '256');
    await page.fill('#metadata', 'from=test-page');
    await page.click('#create');
    await row().filter({ hasText: 'running' }).waitFor();
    const id = (await row().first().locator('td').first().textContent())!.trim();
    assert.match(id, /^cl-[0-9a-z]+$/);
    const api = (await (
      await fetch(`${sys.url}/v1/capsules/${id}`, { headers: { 'x-api-key': sys.adminKey } })
    ).json()) as CapsuleJson;
    assert.deepEqual([api.state, api.memory_mb, api.metadata], ['running', 256, { from: 'test-page' }]);

    await page.selectOption('#execCapsule', id);
    await page.fill('#cmd', 'echo hello-from-page; echo oops >&2; exit 4');
    await page.click('#exec');
    await page.locator('#execOut').filter({ hasText: 'hello-from-page' }).waitFor();
    const out = (await page.locator('#execOut').textContent()) ?? '';
    assert.match(out, /^exit code 4/);
    assert.match(out, /--- stderr ---\noops/);

    await row().getByRole('button', { name: 'Pause' }).click();
    await row().filter({ hasText: 'paused' }).waitFor();
    assert.equal(sys.up.agent.manager.get(id).state, 'paused');
    await row().getByRole('button', { name: 'Resume' }).click();
    await row().filter({ hasText: 'running' }).waitFor();
    assert.equal(sys.up.agent.manager.get(id).state, 'running');

    await page.selectOption('#snapCapsule', id);
    await page.fill('#snapName', 'page-snap');
    await page.click('#snap');
    await page.locator('#snapshots tr').filter({ hasText: 'page-snap' }).waitFor();
    const listSnapshots = async () =>
      (await (
        await fetch(`${sys.url}/v1/snapshots`, { headers: { 'x-api-key': sys.adminKey } })
      ).json()) as SnapshotList;
    assert.deepEqual(
      (await listSnapshots()).snapshots.map((s) => s.name),
      ['page-snap'],
    );
    await page
      .locator('#snapshots tr')
      .filter({ hasText: 'page-snap' })
      .getByRole('button', { name: 'Delete' })
      .click();
    await page.locator('#snapshots tr').first().waitFor({ state: 'detached' });
    assert.deepEqual((await listSnapshots()).snapshots, []);

    await row().getByRole('button', { name: 'Destroy' }).click();
    await row().first().waitFor({ state: 'detached' });
    assert.ok(!sys.up.agent.manager.list().some((c) => c.id === id), 'the agent no longer has the capsule');
  });
});
