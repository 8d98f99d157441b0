// The dashboard edits a running capsule's egress policy, in a real browser (Debian's chromium
// driven by playwright-core) against a live `wrenn up`: an IPv6 entry and a rule for a reserved
// header are refused with the server's own 400 message, rules that are not JSON are caught before
// sending, a valid policy is saved (PUT /v1/capsules/:id/network) and shown without its header
// values, the API returns what was saved, and an empty form clears it. Screenshots go to
// test-artifacts/dashboard/. Network slot 14 (the dashboard's; test files run one at a time).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { alertSays, dashboardSuite } from './dashboard-browser.js';

const SLOT = 14;

describe('dashboard edits the egress policy in chromium', { timeout: 300_000 }, () => {
  const ui = dashboardSuite({ slot: SLOT, name: 'net' });
  let id = '';

  const dialog = () => ui.page.getByRole('dialog', { name: /^Egress policy of / });
  const policyRow = () => ui.page.locator('#egress-policy');
  /** The policy as the API has it now. */
  const apiPolicy = async () => {
    const r = await fetch(`${ui.sys.url}/v1/capsules/${id}/network`, { headers: { 'x-api-key': ui.sys.adminKey } });
    assert.equal(r.status, 200, await r.clone().text());
    return (await r.json()) as { allow_out: string[]; deny_out: string[]; rules: Record<string, unknown> };
  };
  /** Fills the dialog's three fields and saves. */
  const save = async (allow: string, deny: string, rules: string) => {
    const d = dialog();
    await d.getByLabel('Allow out').fill(allow);
    await d.getByLabel('Deny out').fill(deny);
    await d.getByLabel('Rules (JSON)').fill(rules);
    await d.getByRole('button', { name: 'Save policy' }).click();
  };
  /** Waits for the dialog to close after a save; fails with its error note if it shows one. */
  const closes = async () => {
    const end = Date.now() + 60_000;
    for (;;) {
      if ((await dialog().count()) === 0) return;
      const alert = dialog().getByRole('alert');
      if ((await alert.count()) > 0) assert.fail(`the save was refused: ${await alert.first().textContent()}`);
      if (Date.now() > end) assert.fail('the dialog neither closed nor showed an error within 60 s');
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  test('sign in and create a capsule: no policy yet, and an Edit button', async () => {
    await ui.signIn();
    id = await ui.createCapsule('minimal');
    await policyRow().getByText('no policy').waitFor();
  });

  test("the server's validation errors are shown and nothing changes", async () => {
    await policyRow().getByRole('button', { name: 'Edit egress policy' }).click();
    const d = dialog();
    await save('2001:db8::/32', '', '');
    await alertSays(d, /IPv6/);
    await save('a.egress.test', '', '{ "a.egress.test": [{ "transform": { "headers": { "Host": "x" } } }] }');
    await alertSays(d, /the Host header cannot be set by a rule/);
    await save('a.egress.test', '', '{ not json');
    await alertSays(d, /Rules are not JSON/);
    await ui.shot('capsule-egress-error');
    assert.deepEqual(
      await apiPolicy(),
      { allow_out: [], deny_out: [], rules: {} },
      'a refused edit changed the policy',
    );
  });

  test('a valid policy is saved and shown without its header values; an empty form clears it', async () => {
    const secret = `v-${process.pid}`;
    await save(
      'a.egress.test\n*.wild.egress.test\n93.184.216.0/24',
      '0.0.0.0/0',
      JSON.stringify({ 'a.egress.test': [{ transform: { headers: { 'X-Api-Key': secret } } }] }),
    );
    await closes();
    for (const v of ['a.egress.test', '*.wild.egress.test', '93.184.216.0/24', '0.0.0.0/0'])
      await policyRow().locator('.tag', { hasText: v }).first().waitFor();
    assert.match((await policyRow().textContent()) ?? '', /rules for\s*a\.egress\.test/);
    assert.equal((await ui.page.content()).includes(secret), false, 'a header value is on the ui.page');
    await ui.shot('capsule-egress');
    const saved = await apiPolicy();
    assert.deepEqual(saved.allow_out.slice().sort(), ['*.wild.egress.test', '93.184.216.0/24', 'a.egress.test']);
    assert.deepEqual(saved.deny_out, ['0.0.0.0/0']);
    assert.deepEqual(saved.rules, { 'a.egress.test': [{ transform: { headers: { 'X-Api-Key': secret } } }] });

    // Reopened: the header value is masked; saving the rules as shown keeps them.
    await policyRow().getByRole('button', { name: 'Edit egress policy' }).click();
    assert.match(await dialog().getByLabel('Allow out').inputValue(), /93\.184\.216\.0\/24/);
    const shown = await dialog().getByLabel('Rules (JSON)').inputValue();
    assert.equal(shown.includes(secret), false, `the form shows the header value: ${shown}`);
    assert.match(shown, /X-Api-Key/);
    await dialog().getByLabel('Deny out').fill('');
    await dialog().getByRole('button', { name: 'Save policy' }).click();
    await closes();
    const kept = await apiPolicy();
    assert.deepEqual(kept.deny_out, []);
    assert.deepEqual(kept.rules, saved.rules, 'rules saved as shown (masked) were not kept');
    // Changing a masked rule without its value is caught before sending.
    await policyRow().getByRole('button', { name: 'Edit egress policy' }).click();
    await dialog().getByLabel('Rules (JSON)').fill(shown.replace('a.egress.test', 'b.egress.test'));
    await dialog().getByRole('button', { name: 'Save policy' }).click();
    await alertSays(dialog(), /need their header values again/);
    await save('', '', '');
    await closes();
    await policyRow().getByText('no policy').waitFor();
    assert.deepEqual(await apiPolicy(), { allow_out: [], deny_out: [], rules: {} });
  });
});
