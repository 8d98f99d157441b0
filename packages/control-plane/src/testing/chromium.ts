// Debian's chromium for every real-browser suite (the dashboard's, the /test page's, the SDK in a
// browser): one launch with a fresh profile directory, no background traffic (tests send traffic
// only to loopback) and one page, and one close that also removes the profile. Test-only: it needs
// playwright-core (a dev dependency) and /usr/bin/chromium (npm test's setup installs both).
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

export interface Chromium {
  context: BrowserContext;
  /** The browser's first page. */
  page: Page;
  /** Closes the browser and removes its profile directory. */
  close(): Promise<void>;
}

/** Headless chromium with a fresh profile `wrenn-chromium-<name>-*`; throws saying how to install it when missing. */
export async function openChromium(name: string): Promise<Chromium> {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `${CHROMIUM} is missing: install Debian's chromium (npm test's setup does: apt-get install chromium)`,
    );
  const profile = mkdtempSync(join(tmpdir(), `wrenn-chromium-${name}-`));
  const removeProfile = () => rmSync(profile, { recursive: true, force: true, maxRetries: 3 });
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
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
  } catch (err) {
    removeProfile();
    throw err;
  }
  context.setDefaultTimeout(60_000);
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    close: async () => {
      await context.close().catch(() => undefined);
      removeProfile();
    },
  };
}
