// The dashboard's notebook in a real browser (Debian's chromium driven by playwright-core) against
// a live `wrenn up` with the code-interpreter-v1 template from the shared cache: sign in, create a
// capsule from that template, run `print(1+1)` with Shift+Enter, a matplotlib plot (an <img> that
// decodes), state shared between cells, an error with its traceback; HTML from the capsule cannot
// run script in the dashboard (sandboxed iframe) and the notebook keeps working after it; a capsule
// without a code interpreter says so. Screenshots go to test-artifacts/dashboard/. Network slot 14
// (the dashboard's; test files run one at a time).

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { checkPrerequisites, launch, shots } from './dashboard-browser.js';
import { type LiveSystem, SHARED_IMAGES, startLive } from './e2b-live.js';

const SLOT = 14;

describe('dashboard notebook in chromium', { timeout: 600_000 }, () => {
  let sys: LiveSystem;
  let context: BrowserContext;
  let page: Page;
  let profile: string;

  before(async () => {
    checkPrerequisites();
    sys = await startLive({ db: 'sqlite', slot: SLOT, imagesDir: SHARED_IMAGES });
    profile = mkdtempSync(join(tmpdir(), 'wrenn-chromium-nb-'));
    context = await launch(profile);
    page = context.pages()[0] ?? (await context.newPage());
  });
  after(async () => {
    await context?.close().catch(() => undefined);
    if (profile) rmSync(profile, { recursive: true, force: true, maxRetries: 3 });
    await sys?.close();
  });

  const shot = (name: string) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  const cell = (n: number) => page.getByRole('region', { name: `Cell ${n}`, exact: true });
  /** Types code into cell n, picks its language (a new cell takes the previous one's) and runs it with Shift+Enter. */
  const runCell = async (n: number, code: string, language = 'python') => {
    await cell(n).getByLabel(`Language of cell ${n}`).selectOption(language);
    const editor = page.getByLabel(`Code of cell ${n}`, { exact: true });
    await editor.fill(code);
    await editor.press('Shift+Enter');
  };
  const output = (n: number) => page.getByRole('log', { name: `Output of cell ${n}`, exact: true });
  /** Waits for something in cell n's output; on failure says what the output shows instead. */
  const seen = async (n: number, what: ReturnType<Page['locator']>) => {
    try {
      await what.waitFor();
    } catch (err) {
      const shows = await output(n)
        .innerHTML({ timeout: 1000 })
        .catch(() => '(no output element)');
      await shot(`notebook-failure-cell-${n}`).catch(() => undefined);
      throw new Error(`cell ${n}: ${(err as Error).message.split('\n')[0]}; its output shows: ${shows.slice(0, 2000)}`);
    }
  };

  test('sign in and create a code-interpreter capsule', async () => {
    await page.goto(sys.url);
    await page.getByLabel('API key').fill(sys.adminKey);
    await page.getByLabel('API key').press('Enter');
    await page.getByRole('heading', { name: 'Capsules' }).waitFor();
    await page.getByRole('button', { name: 'New capsule' }).click();
    const dialog = page.getByRole('dialog', { name: 'New capsule' });
    await dialog.getByLabel('Template').selectOption('code-interpreter-v1');
    await dialog.getByRole('button', { name: 'Create capsule' }).click();
    await page.waitForURL(/\/capsules\/cl-[a-z0-9]+$/);
    await page.locator('#capsule-title .badge', { hasText: /^running$/ }).waitFor();
  });

  test('runs print(1+1) with Shift+Enter and a matplotlib plot as an image; cells share state', async () => {
    await page.getByRole('tab', { name: 'Notebook' }).click();
    await runCell(1, 'x = 41\nprint(1+1)');
    await seen(1, output(1).locator('pre.out-stdout', { hasText: /^2\s*$/ }));
    // Running the last cell opened a second one.
    await runCell(
      2,
      [
        'import matplotlib.pyplot as plt',
        "plt.bar(['a', 'b', 'c'], [3, 1, 2])",
        "plt.title('Letters')",
        'plt.show()',
      ].join('\n'),
    );
    const img = output(2).getByRole('img', { name: 'Chart: Letters' });
    await seen(2, img);
    const size = await img.evaluate(async (el) => {
      const i = el as unknown as { decode(): Promise<void>; naturalWidth: number; naturalHeight: number; src: string };
      await i.decode();
      return [i.naturalWidth, i.naturalHeight, i.src.slice(0, 22)];
    });
    assert.ok(Number(size[0]) > 100 && Number(size[1]) > 100, `image size ${size}`);
    assert.equal(size[2], 'data:image/png;base64,');
    await runCell(3, 'x + 1');
    await seen(3, output(3).locator('pre.out-text', { hasText: /^42$/ }));
    await runCell(4, 'def f():\n    return 1 / 0\nf()');
    const err = output(4).locator('pre.out-error');
    await seen(4, err);
    assert.match((await err.textContent()) ?? '', /ZeroDivisionError: division by zero/);
    await runCell(5, 'echo "from bash $BASH_VERSION"', 'bash');
    await seen(5, output(5).locator('pre.out-stdout', { hasText: /^from bash/ }));
    await shot('capsule-notebook');
  });

  test('HTML from the capsule runs no script in the dashboard; the notebook keeps working', async () => {
    const hostile = [
      '<script>',
      'try { parent.document.title = "pwned"; } catch (e) {}',
      'try { parent.localStorage.setItem("pwned", "1"); } catch (e) {}',
      'document.write("<p>script ran</p>");',
      '</script>',
      '<p>after the script</p>',
    ].join('');
    await runCell(6, `from IPython.display import HTML, display\ndisplay(HTML(${JSON.stringify(hostile)}))`);
    const frame = output(6).locator('iframe.out-html');
    await seen(6, frame);
    assert.equal(await frame.getAttribute('sandbox'), '');
    // The frame parsed past the script: had scripts been allowed, it would have run by now.
    await page.frameLocator('iframe.out-html').getByText('after the script').waitFor();
    assert.equal(await page.frameLocator('iframe.out-html').getByText('script ran').count(), 0);
    assert.notEqual(await page.title(), 'pwned');
    assert.equal(await page.evaluate("localStorage.getItem('pwned')"), null);
    assert.equal(await page.evaluate("localStorage.getItem('wrenn.apiKey')"), sys.adminKey);
    await runCell(7, 'x');
    await seen(7, output(7).locator('pre.out-text', { hasText: /^41$/ }));
  });

  test('a capsule without a code interpreter says so', async () => {
    const res = await fetch(`${sys.url}/v1/capsules`, {
      method: 'POST',
      headers: { 'x-api-key': sys.adminKey, 'content-type': 'application/json' },
      body: JSON.stringify({ template: 'minimal' }),
    });
    assert.equal(res.status, 201, await res.clone().text());
    const { id } = (await res.json()) as { id: string };
    await page.goto(`${sys.url}/capsules/${id}`);
    await page.locator('#capsule-title .badge', { hasText: /^running$/ }).waitFor();
    await page.getByRole('tab', { name: 'Notebook' }).click();
    await page.getByText('has no code interpreter').waitFor();
    await shot('capsule-notebook-unavailable');
  });
});
