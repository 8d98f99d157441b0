// What the dashboard's browser suites share: Debian's chromium (driven by playwright-core) with a
// fresh profile and no background traffic, the check that it and the built dashboard are there,
// and the folder their screenshots go to.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BrowserContext, chromium } from 'playwright-core';
import { defaultDashboardDir } from '../src/api/dashboard.js';

const CHROMIUM = '/usr/bin/chromium';
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
/** Screenshots of the dashboard suites. */
export const shots = join(repoRoot, 'test-artifacts', 'dashboard');

/** Headless Debian chromium with a fresh profile directory and no background traffic. */
export async function launch(profile: string): Promise<BrowserContext> {
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  context.setDefaultTimeout(60_000);
  return context;
}

/** Chromium and the built dashboard are there; the screenshot folder is made. */
export function checkPrerequisites(): void {
  assert.ok(
    existsSync(CHROMIUM),
    `${CHROMIUM} is missing: install Debian's chromium (npm test's setup does: apt-get install chromium)`,
  );
  assert.ok(
    existsSync(join(defaultDashboardDir(), 'index.html')),
    `the dashboard is not built at ${defaultDashboardDir()}: run npm run build (or npm run build -w packages/dashboard)`,
  );
  mkdirSync(shots, { recursive: true });
}
