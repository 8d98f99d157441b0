// The one set-up of the dashboard's browser suites: a live `wrenn up` and Debian's chromium (the
// shared launch in src/testing/chromium.ts) opened before the suite's tests and closed after them
// (browser and profile first, then the system), the check that the built dashboard is there, sign-in
// with the admin key, and screenshots into test-artifacts/dashboard/.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Locator, Page } from 'playwright-core';
import { defaultDashboardDir } from '../src/api/dashboard.js';
import { type Chromium, openChromium } from '../src/testing/chromium.js';
import { type LiveSystem, startLive } from './e2b-live.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
/** Screenshots of the dashboard suites. */
export const shots = join(repoRoot, 'test-artifacts', 'dashboard');

/** The built dashboard is there (else says how to build it); the screenshot folder is made. */
export function checkDashboardBuilt(): void {
  assert.ok(
    existsSync(join(defaultDashboardDir(), 'index.html')),
    `the dashboard is not built at ${defaultDashboardDir()}: run npm run build (or npm run build -w packages/dashboard)`,
  );
  mkdirSync(shots, { recursive: true });
}

/** Waits for an alert inside `where` (a dialog, say) to say `text`; on failure says what the alerts show. */
export async function alertSays(where: Locator, text: RegExp): Promise<void> {
  const note = where.getByRole('alert');
  try {
    await note.filter({ hasText: text }).waitFor({ timeout: 60_000 });
  } catch (err) {
    const shows = await note.allInnerTexts().catch(() => []);
    throw new Error(`expected ${text}; the alerts show ${JSON.stringify(shows)}: ${(err as Error).message}`);
  }
}

export interface DashboardSuite {
  /** The live system (set once the suite's before hook ran). */
  readonly sys: LiveSystem;
  /** The browser's page (set once the suite's before hook ran). */
  readonly page: Page;
  /** A full-page screenshot test-artifacts/dashboard/<name>.png. */
  shot(name: string): Promise<void>;
  /** Opens the dashboard and signs in with the admin key; waits for the capsule list. */
  signIn(): Promise<void>;
  /** Waits for a capsule's page to open; its id. */
  capsuleIdOnPage(): Promise<string>;
  /** Waits for the capsule page's state badge to say `state`. */
  waitState(state: string): Promise<void>;
  /** From the capsule list: New capsule from `template`, then waits for its page to show it running; its id. */
  createCapsule(template: string): Promise<string>;
}

/**
 * Call inside a describe(): registers its before/after hooks (a live system on `slot`, with the
 * template cache `imagesDir` when given, and chromium with a profile named after `name`).
 */
export function dashboardSuite(o: { slot: number; name: string; imagesDir?: string }): DashboardSuite {
  let sys: LiveSystem | undefined;
  let browser: Chromium | undefined;
  before(async () => {
    checkDashboardBuilt();
    browser = await openChromium(o.name);
    sys = await startLive({ db: 'sqlite', slot: o.slot, ...(o.imagesDir ? { imagesDir: o.imagesDir } : {}) });
  });
  after(async () => {
    await browser?.close();
    await sys?.close();
  });
  const suite: DashboardSuite = {
    get sys() {
      if (!sys) throw new Error('the live system is not started (used outside a test?)');
      return sys;
    },
    get page() {
      if (!browser) throw new Error('chromium is not open (used outside a test?)');
      return browser.page;
    },
    shot: async (name) => {
      await suite.page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
    },
    signIn: async () => {
      const page = suite.page;
      await page.goto(suite.sys.url);
      await page.getByLabel('API key').fill(suite.sys.adminKey);
      await page.getByLabel('API key').press('Enter');
      await page.getByRole('heading', { name: 'Capsules' }).waitFor();
    },
    capsuleIdOnPage: async () => {
      await suite.page.waitForURL(/\/capsules\/cl-[a-z0-9]+$/);
      return decodeURIComponent(new URL(suite.page.url()).pathname.split('/').pop()!);
    },
    waitState: (state) => suite.page.locator('#capsule-title .badge', { hasText: new RegExp(`^${state}$`) }).waitFor(),
    createCapsule: async (template) => {
      await suite.page.getByRole('button', { name: 'New capsule' }).click();
      const dialog = suite.page.getByRole('dialog', { name: 'New capsule' });
      await dialog.getByLabel('Template').selectOption(template);
      await dialog.getByRole('button', { name: 'Create capsule' }).click();
      // A built-in template's first use builds it during the create (code-interpreter-v1 on a
      // fresh template cache: minutes), so this wait is longer than the page's default.
      await suite.page.waitForURL(/\/capsules\/cl-[a-z0-9]+$/, { timeout: 600_000 });
      const id = await suite.capsuleIdOnPage();
      await suite.waitState('running');
      return id;
    },
  };
  return suite;
}
