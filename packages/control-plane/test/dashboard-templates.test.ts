// Template tags and capsules from container images in the dashboard, in a real browser (Debian's
// chromium driven by playwright-core) against a live `wrenn up` and Debian's docker-registry on
// loopback ports holding musl images built here. Tags: GET /v1/templates lists them, the Tags dialog
// adds them (the server's 400 shown for a refused one), a capsule created from `name:tag` runs the
// tagged build and not the latest, a tag is removed. Images: the create form's pull progress shows
// while a layer is held half-way by a gated proxy (and no capsule exists yet), then the capsule runs
// with the image's ENV/WORKDIR/USER; a second pull finds every layer cached; a missing image and
// refused registry credentials are shown with the server's message and create nothing; the right
// credentials work. Screenshots go to test-artifacts/dashboard/. Network slot 14 (the dashboard's).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  type GatedRegistry,
  pushMuslImage,
  registrySkip,
  startGatedRegistry,
  startRegistry,
  type TestRegistry,
} from '@wrenn/host-agent/testing/oci';
import { alertSays, dashboardSuite } from './dashboard-browser.js';
import { SHARED_IMAGES } from './e2b-live.js';
import { client } from './native-helpers.js';

const SLOT = 14;
const skip = registrySkip;

describe('dashboard: template tags and capsules from images, in chromium', { skip, timeout: 600_000 }, () => {
  const ui = dashboardSuite({ slot: SLOT, name: 'tpl', imagesDir: SHARED_IMAGES });
  let reg: TestRegistry;
  let authReg: TestRegistry;
  let gate: GatedRegistry;
  let call: ReturnType<typeof client>;

  before(async () => {
    [reg, authReg] = await Promise.all([startRegistry(), startRegistry({ username: 'bob', password: 'pw-123' })]);
    // A layer of its own (random bytes), so the first pull downloads it whatever the host cached before.
    await pushMuslImage(reg, 'wrenn-test/musl', 'dash', [{ name: 'app/unique.bin', content: randomBytes(256 * 1024) }]);
    await pushMuslImage(authReg, 'private/musl', 'v1');
    gate = await startGatedRegistry(reg);
    call = client(ui.sys.url, ui.sys.adminKey);
  });
  after(async () => {
    await gate?.stop();
    await reg?.stop();
    await authReg?.stop();
  });

  /** A link of the main navigation (a capsule's page has a 'Capsules' breadcrumb too). */
  const nav = (name: string) => ui.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name });
  const exec = async (id: string, cmd: string) => {
    const r = await call('POST', `/v1/capsules/${id}/exec`, { cmd });
    assert.equal(r.status, 200, r.text);
    return r.body.stdout as string;
  };
  /** Builds `name` from minimal with /build.txt saying `what`, through the API; waits for it. */
  const build = async (name: string, what: string) => {
    const start = await call('POST', '/v1/templates', {
      name,
      dockerfile: `FROM minimal\nRUN echo ${what} > /build.txt\n`,
    });
    assert.equal(start.status, 202, start.text);
    let b = { status: 'building', error: '', logs: '' };
    for (let i = 0; i < 1500 && (b.status === 'building' || b.status === 'pending'); i++) {
      await new Promise((r) => setTimeout(r, 200));
      b = (await call('GET', `/v1/templates/builds/${start.body.build_id}`)).body;
    }
    assert.equal(b.status, 'ready', `${b.error}\n${b.logs}`);
  };
  /** The tags GET /v1/templates lists for `name`. */
  const listedTags = async (name: string) => {
    const r = await call('GET', '/v1/templates');
    assert.equal(r.status, 200, r.text);
    const t = (r.body.templates as { name: string; tags: string[] }[]).find((x) => x.name === name);
    assert.ok(t, `${name} is not in the list: ${r.text}`);
    return t.tags;
  };
  const capsuleCount = async () => ((await call('GET', '/v1/capsules')).body.capsules as unknown[]).length;

  test('tags: listed, added in the dialog (a refused one shows why), a capsule from name:tag, removed', async () => {
    await build('dash-tags', 'first');
    assert.deepEqual(await listedTags('dash-tags'), []);
    await ui.signIn();
    await nav('Templates & snapshots').click();
    const tagsCell = ui.page.getByTestId('tags-of-dash-tags');
    assert.equal((await tagsCell.textContent())?.trim(), '—');
    await ui.page.getByRole('button', { name: 'Tags of dash-tags' }).click();
    const dialog = ui.page.getByRole('dialog', { name: 'Tags of dash-tags' });
    await dialog.getByRole('row').filter({ hasText: 'dash-tags:default' }).waitFor();

    // Refused by the server, with its message; nothing changes.
    await dialog.getByLabel('New tags').fill('default');
    await dialog.getByRole('button', { name: 'Add tags' }).click();
    await alertSays(dialog, /'default' always means the latest build/);
    await dialog.getByLabel('New tags').fill('ok bad/tag');
    await dialog.getByRole('button', { name: 'Add tags' }).click();
    await alertSays(dialog, /bad\/tag/);
    assert.deepEqual(await listedTags('dash-tags'), []);

    await dialog.getByLabel('New tags').fill('stable, v1');
    await dialog.getByRole('button', { name: 'Add tags' }).click();
    await dialog.getByRole('row').filter({ hasText: 'dash-tags:stable' }).waitFor();
    await dialog.getByRole('row').filter({ hasText: 'dash-tags:v1' }).waitFor();
    assert.deepEqual((await listedTags('dash-tags')).sort(), ['stable', 'v1']);
    await tagsCell.locator('.tag', { hasText: 'stable' }).waitFor();
    await ui.shot('template-tags');
    await dialog.getByRole('button', { name: 'Done' }).click();

    // A newer build: 'stable' still starts the first one, the name alone the latest.
    await build('dash-tags', 'second');
    await nav('Capsules').click();
    const tagged = await ui.createCapsule('dash-tags:stable');
    assert.equal(await exec(tagged, 'cat /build.txt'), 'first\n');
    const latest = await call('POST', '/v1/capsules', { template: 'dash-tags', timeout_sec: 300 });
    assert.equal(latest.status, 201, latest.text);
    assert.equal(await exec(latest.body.id, 'cat /build.txt'), 'second\n');

    await nav('Templates & snapshots').click();
    await ui.page.getByRole('button', { name: 'Tags of dash-tags' }).click();
    await dialog.getByRole('button', { name: 'Remove tag v1' }).click();
    await dialog.getByRole('row').filter({ hasText: 'dash-tags:v1' }).waitFor({ state: 'detached' });
    assert.deepEqual(await listedTags('dash-tags'), ['stable']);
    const gone = await call('POST', '/v1/capsules', { template: 'dash-tags:v1', timeout_sec: 60 });
    assert.equal(gone.status, 404, gone.text);
    await dialog.getByRole('button', { name: 'Done' }).click();
  });

  /** Opens New capsule from the capsule list, set to start from a container image. */
  const imageForm = async (image: string, credentials?: { user: string; password: string }) => {
    await nav('Capsules').click();
    await ui.page.getByRole('button', { name: 'New capsule' }).click();
    const d = ui.page.getByRole('dialog', { name: 'New capsule' });
    await d.getByLabel('Start from').selectOption('image');
    await d.getByLabel('Image', { exact: true }).fill(image);
    await d.getByLabel('Registry user').fill(credentials?.user ?? '');
    await d.getByLabel('Registry password').fill(credentials?.password ?? '');
    return d;
  };

  test("a capsule from an image: the pull's progress shows while a layer is held, then it runs", async () => {
    const image = `${gate.host}/wrenn-test/musl:dash`;
    const before = await capsuleCount();
    gate.hold();
    try {
      const d = await imageForm(image);
      await d.getByRole('button', { name: 'Create capsule' }).click();
      const progress = d.getByRole('log', { name: 'Image pull progress' });
      await progress.filter({ hasText: /pulling .*musl:dash \(manifest [0-9a-f]{12}\)/ }).waitFor();
      // Live: a layer is still held half-way, the button says so, and no capsule exists yet.
      for (let i = 0; gate.held === 0; i++) {
        assert.ok(i < 600, 'no layer download reached the gate');
        await new Promise((r) => setTimeout(r, 100));
      }
      await d.getByRole('button', { name: 'Pulling image…' }).waitFor();
      assert.equal(await capsuleCount(), before, 'a capsule was created before the pull finished');
      await ui.shot('capsule-image-pull');
    } finally {
      gate.release();
    }
    const id = await ui.capsuleIdOnPage();
    await ui.waitState('running');
    const c = await call('GET', `/v1/capsules/${id}`);
    assert.match(c.body.template, /^img-[0-9a-f]{40}$/);
    assert.equal(
      await exec(id, 'echo "$GREETING"; pwd; id -un; wc -c < /app/unique.bin'),
      'hello image\n/app\napp\n262144\n',
    );
  });

  test('a second pull of the image finds every layer cached', async () => {
    // The dialog closes once the capsule is made: what the pull status said is recorded as it changes.
    await ui.page.evaluate(`(() => {
      const seen = (globalThis.pullStatus = []);
      new MutationObserver(() => {
        const s = document.querySelector('[role="status"][aria-label="Image pull"]')?.textContent;
        if (s && seen[seen.length - 1] !== s) seen.push(s);
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    })()`);
    const d = await imageForm(`${reg.host}/wrenn-test/musl:dash`);
    await d.getByRole('button', { name: 'Create capsule' }).click();
    const id = await ui.capsuleIdOnPage();
    await ui.waitState('running');
    const seen = (await ui.page.evaluate('globalThis.pullStatus')) as string[];
    assert.ok(
      seen.some((s) => /^Pulled .*musl:dash: .*2 layers, 2 cached, 0\.0 MiB downloaded$/.test(s.trim())),
      JSON.stringify(seen),
    );
    assert.equal(await exec(id, 'id -un'), 'app\n');
  });

  test('a missing image and refused credentials show the server message and create nothing; right ones work', async () => {
    const before = await capsuleCount();
    let d = await imageForm(`${reg.host}/wrenn-test/nope:v1`);
    await d.getByRole('button', { name: 'Create capsule' }).click();
    await alertSays(d, /nope/);
    await d
      .getByRole('status', { name: 'Image pull' })
      .filter({ hasText: /^Could not pull/ })
      .waitFor();
    await ui.shot('capsule-image-missing');
    await d.getByRole('button', { name: 'Cancel' }).click();

    const privateImage = `${authReg.host}/private/musl:v1`;
    d = await imageForm(privateImage, { user: 'bob', password: 'wrong' });
    await d.getByRole('button', { name: 'Create capsule' }).click();
    await alertSays(d, /private\/musl/);
    assert.equal(await capsuleCount(), before, 'a refused pull created a capsule');
    await d.getByLabel('Registry password').fill('pw-123');
    await d.getByRole('button', { name: 'Create capsule' }).click();
    const id = await ui.capsuleIdOnPage();
    await ui.waitState('running');
    assert.equal(await exec(id, 'pwd'), '/app\n');
  });
});
