// The dashboard in a real browser (Debian's chromium driven by playwright-core) against a live
// `wrenn up`: sign in, create a capsule, run `echo hi` in its terminal, upload a file, pause and
// resume, snapshot it and start a capsule from the snapshot, destroy both; build a two-stage
// template with a build argument and follow its steps live (then again, from the layer cache).
// Screenshots of the main pages go to test-artifacts/dashboard/.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { createCapsule } from '../src/db/repositories/capsules.js';
import { openChromium } from '../src/testing/chromium.js';
import { checkDashboardBuilt, dashboardSuite, shots } from './dashboard-browser.js';
import { newTeamKey, startBareControlPlane } from './native-helpers.js';

// Network slot 14 (see testNetwork in e2b-live.ts).
const SLOT = 14;

describe('dashboard in chromium against a live system', { timeout: 600_000 }, () => {
  const ui = dashboardSuite({ slot: SLOT, name: 'main' });

  test('sign in with the API key', async () => {
    await ui.page.goto(ui.sys.url);
    await ui.page.getByLabel('API key').fill('wrn_not_a_real_key_000000000000000');
    await ui.page.getByRole('button', { name: 'Sign in' }).click();
    await ui.page.getByRole('alert').filter({ hasText: 'not accepted' }).waitFor();
    await ui.shot('login');
    await ui.page.getByLabel('API key').fill(ui.sys.adminKey);
    await ui.page.getByLabel('API key').press('Enter');
    await ui.page.getByRole('heading', { name: 'Capsules' }).waitFor();
    await ui.page.getByText('No capsules yet').waitFor();
    assert.equal(await ui.page.evaluate("localStorage.getItem('wrenn.apiKey')"), ui.sys.adminKey);
  });

  let first = '';

  test('create a capsule, run echo hi in its terminal', async () => {
    await ui.page.getByRole('button', { name: 'New capsule' }).click();
    const dialog = ui.page.getByRole('dialog', { name: 'New capsule' });
    await dialog.getByLabel('Template').selectOption('minimal');
    await dialog.getByLabel('Metadata (key=value per line)').fill('owner=dashboard-test');
    await dialog.getByRole('button', { name: 'Create capsule' }).click();
    first = await ui.capsuleIdOnPage();
    await ui.waitState('running');
    await ui.page.getByText('Terminal: connected').waitFor();
    await ui.page.locator('.xterm').click();
    await ui.page.keyboard.type('echo hi\n');
    // A terminal row that is exactly "hi": the command's output, not the echoed command line.
    await ui.page.waitForFunction(
      "[...document.querySelectorAll('.xterm-rows > div')].some((r) => r.textContent.trim() === 'hi')",
    );
    await ui.shot('capsule-terminal');
  });

  test('upload a file and see it listed and opened', async () => {
    await ui.page.getByRole('tab', { name: 'Files' }).click();
    await ui.page.getByLabel('Folder', { exact: true }).fill('/tmp');
    await ui.page.getByRole('button', { name: 'Go', exact: true }).click();
    await ui.page.getByLabel('Upload files').setInputFiles({
      name: 'hello-dashboard.txt',
      mimeType: 'text/plain',
      buffer: Buffer.from('uploaded from the dashboard\n'),
    });
    const row = ui.page.getByRole('row').filter({ hasText: 'hello-dashboard.txt' });
    await row.waitFor();
    await row.getByRole('button', { name: 'hello-dashboard.txt', exact: true }).click();
    await ui.page.locator('.preview pre', { hasText: 'uploaded from the dashboard' }).waitFor();
    // The file is really in the capsule.
    const r = await fetch(`${ui.sys.url}/v1/capsules/${first}/exec`, {
      method: 'POST',
      headers: { 'x-api-key': ui.sys.adminKey, 'content-type': 'application/json' },
      body: JSON.stringify({ cmd: 'cat /tmp/hello-dashboard.txt' }),
    });
    assert.equal(((await r.json()) as { stdout: string }).stdout, 'uploaded from the dashboard\n');
    await ui.shot('capsule-files');
    await ui.page.getByRole('tab', { name: 'Metrics' }).click();
    // Two samples draw a line (it may be flat, so it is waited for in the DOM, not as visible).
    await ui.page.locator('.chart polyline').first().waitFor({ state: 'attached' });
    await ui.page.locator('.chart figcaption strong', { hasText: /%$/ }).waitFor();
    await ui.shot('capsule-metrics');
    await ui.page.getByRole('tab', { name: 'Events' }).click();
    await ui.page.locator('ol.events li').first().waitFor();
  });

  test('a server started in the terminal shows up under Ports with a working proxy URL; processes can be killed', async () => {
    await ui.page.getByRole('tab', { name: 'Terminal' }).click();
    await ui.page.getByText('Terminal: connected').waitFor();
    await ui.page.locator('.xterm').click();
    await ui.page.keyboard.type('busybox httpd -f -p 8080 -h /tmp &\n');
    await ui.page.waitForFunction(
      "[...document.querySelectorAll('.xterm-rows > div')].some((r) => r.textContent.includes('httpd -f -p 8080'))",
    );
    await ui.page.getByRole('tab', { name: 'Ports' }).click();
    const link = ui.page.getByRole('link', { name: `${ui.sys.url}/proxy/${first}/8080/` });
    // The list refreshes every 10 s; Refresh asks again until the server is listening.
    for (let i = 0; i < 30 && (await link.count()) === 0; i++) {
      await ui.page.getByRole('button', { name: 'Refresh ports' }).click();
      await link.waitFor({ timeout: 1000 }).catch(() => undefined);
    }
    await link.waitFor();
    await ui.shot('capsule-ports');
    const viaProxy = await fetch(`${ui.sys.url}/proxy/${first}/8080/hello-dashboard.txt`);
    assert.equal(await viaProxy.text(), 'uploaded from the dashboard\n');

    await ui.page.getByRole('tab', { name: 'Processes' }).click();
    const shell = ui.page.getByRole('row').filter({ hasText: /dash-[a-z0-9]+/ });
    await shell.first().waitFor();
    const pid = (await shell.first().getByRole('rowheader').textContent())?.trim() ?? '';
    assert.match(pid, /^\d+$/);
    await ui.shot('capsule-processes');
    await ui.page.getByRole('button', { name: `Kill process ${pid}` }).click();
    await ui.page.getByRole('button', { name: `Kill process ${pid}` }).waitFor({ state: 'detached' });
  });

  test('pause and resume', async () => {
    await ui.page.getByRole('button', { name: `Pause ${first}` }).click();
    await ui.waitState('paused');
    await ui.page.getByRole('tab', { name: 'Terminal' }).click();
    await ui.page.getByText('Resume it to continue').waitFor();
    await ui.shot('capsule-paused');
    await ui.page.getByRole('button', { name: `Resume ${first}` }).click();
    await ui.waitState('running');
    const res = await fetch(`${ui.sys.url}/v1/capsules/${first}`, { headers: { 'x-api-key': ui.sys.adminKey } });
    assert.equal(((await res.json()) as { state: string }).state, 'running');
  });

  test('snapshot, start a capsule from the snapshot, destroy both', async () => {
    await ui.page.getByRole('button', { name: `Snapshot ${first}` }).click();
    const dialog = ui.page.getByRole('dialog', { name: `Snapshot ${first}` });
    await dialog.getByLabel('Snapshot name').fill('dash-snap');
    await dialog.getByRole('button', { name: 'Create snapshot' }).click();
    await dialog.getByText('is ready').waitFor();
    await dialog.getByRole('button', { name: 'Done' }).click();

    await ui.page.getByRole('link', { name: 'Templates & snapshots' }).click();
    const snapRow = ui.page.getByRole('table', { name: 'Snapshots' }).getByRole('row').filter({ hasText: 'dash-snap' });
    await snapRow.waitFor();
    await ui.page.getByRole('heading', { name: 'Build a template from a Dockerfile' }).waitFor();
    await ui.shot('templates');
    await snapRow.getByRole('button', { name: 'Start a capsule from dash-snap' }).click();
    const create = ui.page.getByRole('dialog', { name: 'New capsule' });
    assert.equal(await create.getByLabel('Template').inputValue(), 'dash-snap');
    await create.getByRole('button', { name: 'Create capsule' }).click();
    const second = await ui.capsuleIdOnPage();
    assert.notEqual(second, first);
    await ui.waitState('running');
    await ui.page.locator('.facts dd', { hasText: /^dash-snap$/ }).waitFor();
    // The snapshot kept the uploaded file.
    await ui.page.getByRole('tab', { name: 'Files' }).click();
    await ui.page.getByLabel('Folder', { exact: true }).fill('/tmp');
    await ui.page.getByRole('button', { name: 'Go', exact: true }).click();
    await ui.page.getByRole('row').filter({ hasText: 'hello-dashboard.txt' }).waitFor();

    // Destroy from the capsule's ui.page, then the first one from the list.
    await ui.page.getByRole('button', { name: `Destroy ${second}` }).click();
    await ui.page.getByRole('dialog', { name: 'Destroy capsule?' }).getByRole('button', { name: 'Destroy' }).click();
    await ui.page.waitForURL(`${ui.sys.url}/`);
    await ui.page.getByRole('link', { name: first }).waitFor();
    await ui.shot('capsules');
    await ui.page.getByRole('button', { name: `Destroy ${first}` }).click();
    await ui.page.getByRole('dialog', { name: 'Destroy capsule?' }).getByRole('button', { name: 'Destroy' }).click();
    await ui.page.getByText('No capsules yet').waitFor();
    const res = await fetch(`${ui.sys.url}/v1/capsules`, { headers: { 'x-api-key': ui.sys.adminKey } });
    assert.deepEqual(((await res.json()) as { capsules: unknown[] }).capsules, []);
  });

  test('build a two-stage template with a build argument, its live log and steps, then start a capsule from it', async () => {
    await ui.page.getByRole('link', { name: 'Templates & snapshots' }).click();
    await ui.page.getByLabel('Template name').fill('dash-built');
    await ui.page
      .getByLabel('Dockerfile')
      .fill(
        'ARG WHAT=default\nFROM minimal AS stage\nARG WHAT\nRUN echo built-by-$WHAT > /built.txt\n' +
          'FROM minimal\nCOPY --from=stage /built.txt /built.txt\n',
      );
    await ui.page.getByLabel('Build arguments').fill('WHAT=dashboard');
    const steps = ui.page.getByRole('list', { name: 'Build steps' }).getByRole('listitem');
    const buildAndWait = async (seen?: string) => {
      await ui.page.getByRole('button', { name: 'Build template' }).click();
      // The previous build's log stays until the ui.page clears it: wait for something only this one shows.
      if (seen) await ui.page.getByRole('list', { name: 'Build steps' }).getByText(seen).first().waitFor();
      await ui.page
        .getByTestId('build-log')
        .filter({ hasText: "Template 'dash-built' is ready" })
        .waitFor({ timeout: 300_000 });
      await ui.page.locator('.badge.b-ready').waitFor();
      await ui.page.getByTestId('build-step-count').filter({ hasText: '3/3 steps' }).waitFor();
      return (await steps.allInnerTexts()).map((t) => t.replace(/\s+/g, ' ').trim());
    };
    assert.deepEqual(await buildAndWait(), [
      'done ARG WHAT',
      'done RUN echo built-by-$WHAT > /built.txt',
      'done COPY --from=stage /built.txt /built.txt',
    ]);
    // The same build again: its filesystem steps come from the layer cache, and the ui.page says so.
    assert.deepEqual(await buildAndWait('cached'), [
      'done ARG WHAT',
      'cached RUN echo built-by-$WHAT > /built.txt',
      'cached COPY --from=stage /built.txt /built.txt',
    ]);
    const row = ui.page.getByRole('table', { name: 'Templates' }).getByRole('row').filter({ hasText: 'dash-built' });
    await row.waitFor();
    await ui.shot('template-build');
    await row.getByRole('button', { name: 'Start a capsule from dash-built' }).click();
    await ui.page.getByRole('dialog', { name: 'New capsule' }).getByRole('button', { name: 'Create capsule' }).click();
    const id = await ui.capsuleIdOnPage();
    await ui.waitState('running');
    const r = await fetch(`${ui.sys.url}/v1/capsules/${id}/exec`, {
      method: 'POST',
      headers: { 'x-api-key': ui.sys.adminKey, 'content-type': 'application/json' },
      body: JSON.stringify({ cmd: 'cat /built.txt' }),
    });
    assert.equal(((await r.json()) as { stdout: string }).stdout, 'built-by-dashboard\n');
    await ui.page.getByRole('button', { name: `Destroy ${id}` }).click();
    await ui.page.getByRole('dialog', { name: 'Destroy capsule?' }).getByRole('button', { name: 'Destroy' }).click();
    await ui.page.waitForURL(`${ui.sys.url}/`);
  });

  test('hosts and API keys pages', async () => {
    await ui.page.getByRole('link', { name: 'Hosts' }).click();
    await ui.page.getByRole('table', { name: 'Hosts' }).getByRole('row').nth(1).waitFor();
    await ui.page.locator('.badge.h-online').first().waitFor();
    await ui.shot('hosts');
    await ui.page.getByRole('link', { name: 'API keys' }).click();
    await ui.page.getByLabel('Name of the new key').fill('dashboard-test');
    await ui.page.getByRole('button', { name: 'Create key' }).click();
    const key = (await ui.page.getByTestId('new-key').textContent())?.trim() ?? '';
    assert.match(key, /^wrn_/);
    // The same key in the form the e2b SDKs' own check accepts, taken by the API too.
    const e2bKey = (await ui.page.getByTestId('new-key-e2b').textContent())?.trim() ?? '';
    assert.match(e2bKey, /^e2b_[0-9a-f]+$/);
    assert.equal((await fetch(`${ui.sys.url}/v2/sandboxes`, { headers: { 'x-api-key': e2bKey } })).status, 200);
    await ui.shot('api-keys');
    await ui.page.getByRole('dialog', { name: 'Your new API key' }).getByRole('button', { name: 'Done' }).click();
    const ok = await fetch(`${ui.sys.url}/v1/hosts`, { headers: { 'x-api-key': key } });
    assert.equal(ok.status, 200);
    await ui.page.getByRole('button', { name: 'Revoke dashboard-test' }).click();
    await ui.page.getByRole('dialog', { name: 'Revoke key?' }).getByRole('button', { name: 'Revoke' }).click();
    await ui.page.getByRole('row').filter({ hasText: 'dashboard-test' }).getByText('revoked').waitFor();
    const refused = await fetch(`${ui.sys.url}/v1/hosts`, { headers: { 'x-api-key': key } });
    assert.equal(refused.status, 401);
  });
});

test('a list of 500 capsules is paged and filtered', { timeout: 300_000 }, async (t) => {
  checkDashboardBuilt();
  // Records only (a control plane without hosts): what is checked here is the page, not capsules.
  const cp = await startBareControlPlane(t, 'sqlite');
  const { teamId, key } = await newTeamKey(cp, 'many');
  for (let i = 0; i < 500; i++) {
    await createCapsule(cp.ctx.database.db, {
      teamId,
      hostId: null,
      template: i % 5 === 0 ? 'base' : 'minimal',
      runtime: 'namespace',
      vcpus: 1,
      memoryMb: 256,
      timeoutSec: 0,
      // Not running: without hosts, live metrics would only be errors.
      state: i % 2 === 0 ? 'hibernated' : 'paused',
      metadata: { idx: String(i) },
    });
  }
  const browser = await openChromium('paged');
  t.after(() => browser.close());
  const { page } = browser;
  await page.goto(cp.url);
  await page.getByLabel('API key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('500 of 500 capsules').waitFor();
  await page.getByText('Page 1 of 10').waitFor();
  // 50 rows and the header row.
  assert.equal(await page.locator('table.capsules').getByRole('row').count(), 51);
  await page.screenshot({ path: join(shots, 'capsules-500.png') });
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByText('Page 2 of 10').waitFor();
  await page.getByLabel('State').selectOption('paused');
  await page.getByText('250 of 500 capsules').waitFor();
  await page.getByLabel('Template').selectOption('base');
  await page.getByText('50 of 500 capsules').waitFor();
  await page.getByLabel('State').selectOption('all');
  await page.getByLabel('Template').selectOption('all');
  await page.getByLabel('Search').fill('idx=499');
  await page.getByText('1 of 500 capsules').waitFor();
  await page.getByLabel('Search').fill('idx=4999');
  await page.getByText('No capsule matches these filters.').waitFor();
});
