// The dashboard's notebook in a real browser (Debian's chromium driven by playwright-core) against
// a live `wrenn up` with the code-interpreter-v1 template from the shared cache: sign in, create a
// capsule from that template, run `print(1+1)` with Shift+Enter, a matplotlib plot (an <img> that
// decodes), state shared between cells, an error with its traceback; HTML from the capsule cannot
// run script in the dashboard (sandboxed iframe) and the notebook keeps working after it; a capsule
// without a code interpreter says so. Screenshots go to test-artifacts/dashboard/. Network slot 14
// (the dashboard's; test files run one at a time).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { dashboardSuite } from './dashboard-browser.js';
import { SHARED_IMAGES } from './e2b-live.js';

const SLOT = 14;

describe('dashboard notebook in chromium', { timeout: 600_000 }, () => {
  const ui = dashboardSuite({ slot: SLOT, name: 'nb', imagesDir: SHARED_IMAGES });

  const cell = (n: number) => ui.page.getByRole('region', { name: `Cell ${n}`, exact: true });
  /** Types code into cell n, picks its language (a new cell takes the previous one's) and runs it with Shift+Enter. */
  const runCell = async (n: number, code: string, language = 'python') => {
    await cell(n).getByLabel(`Language of cell ${n}`).selectOption(language);
    const editor = ui.page.getByLabel(`Code of cell ${n}`, { exact: true });
    await editor.fill(code);
    await editor.press('Shift+Enter');
  };
  const output = (n: number) => ui.page.getByRole('log', { name: `Output of cell ${n}`, exact: true });
  /** Waits for something in cell n's output; on failure says what the output shows instead. */
  const seen = async (n: number, what: ReturnType<Page['locator']>) => {
    try {
      await what.waitFor();
    } catch (err) {
      const shows = await output(n)
        .innerHTML({ timeout: 1000 })
        .catch(() => '(no output element)');
      await ui.shot(`notebook-failure-cell-${n}`).catch(() => undefined);
      throw new Error(`cell ${n}: ${(err as Error).message.split('\n')[0]}; its output shows: ${shows.slice(0, 2000)}`);
    }
  };

  test('sign in and create a code-interpreter capsule', async () => {
    await ui.signIn();
    await ui.createCapsule('code-interpreter-v1');
  });

  test('runs print(1+1) with Shift+Enter and a matplotlib plot as an image; cells share state', async () => {
    await ui.page.getByRole('tab', { name: 'Notebook' }).click();
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
    await ui.shot('capsule-notebook');
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
    await ui.page.frameLocator('iframe.out-html').getByText('after the script').waitFor();
    assert.equal(await ui.page.frameLocator('iframe.out-html').getByText('script ran').count(), 0);
    assert.notEqual(await ui.page.title(), 'pwned');
    assert.equal(await ui.page.evaluate("localStorage.getItem('pwned')"), null);
    assert.equal(await ui.page.evaluate("localStorage.getItem('wrenn.apiKey')"), ui.sys.adminKey);
    await runCell(7, 'x');
    await seen(7, output(7).locator('pre.out-text', { hasText: /^41$/ }));
  });

  test('a capsule without a code interpreter says so', async () => {
    const res = await fetch(`${ui.sys.url}/v1/capsules`, {
      method: 'POST',
      headers: { 'x-api-key': ui.sys.adminKey, 'content-type': 'application/json' },
      body: JSON.stringify({ template: 'minimal' }),
    });
    assert.equal(res.status, 201, await res.clone().text());
    const { id } = (await res.json()) as { id: string };
    await ui.page.goto(`${ui.sys.url}/capsules/${id}`);
    await ui.page.locator('#capsule-title .badge', { hasText: /^running$/ }).waitFor();
    await ui.page.getByRole('tab', { name: 'Notebook' }).click();
    await ui.page.getByText('has no code interpreter').waitFor();
    await ui.shot('capsule-notebook-unavailable');
  });
});
