// The SDK in a real browser: bundled for the browser by esbuild (which fails on any Node built-in
// it would pull in), loaded into Debian's chromium (driven by playwright-core) on a page of a live
// `wrenn up`, where it uses the browser's own fetch and WebSocket (key in the query) to create a
// capsule, run a command, drive a terminal, move bytes in and out, and destroy it.
import assert from 'node:assert/strict';
import { dirname, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Live, startLive } from '@wrenn/control-plane/testing';
import { type Chromium, openChromium } from '@wrenn/control-plane/testing/chromium';
import { build } from 'esbuild';

const ENTRY = resolve(dirname(fileURLToPath(import.meta.url)), '../src/index.js');

describe('@wrenn/sdk in chromium', { timeout: 300_000 }, () => {
  let live: Live;
  let browser: Chromium;
  let bundle: string;

  before(async () => {
    const out = await build({
      entryPoints: [ENTRY],
      bundle: true,
      platform: 'browser',
      format: 'iife',
      globalName: 'WrennSDK',
      write: false,
      metafile: true,
      logLevel: 'silent',
    });
    const inputs = Object.keys(out.metafile.inputs);
    assert.ok(
      !inputs.some((i) => i.includes('node_modules')),
      `the browser bundle must not contain packages: ${inputs.join(', ')}`,
    );
    bundle = out.outputFiles[0]!.text;
    live = await startLive(6, 'sdk'); // the SDK slot: test files run one at a time
    browser = await openChromium('sdk');
  });
  after(async () => {
    await browser?.close();
    await live?.close();
  });

  it('creates a capsule, runs a command, drives a terminal, moves bytes and destroys it', async () => {
    const { page } = browser;
    // A page of the control plane itself, so the SDK's requests are same-origin.
    await page.goto(`${live.url}/test`);
    await page.addScriptTag({ content: bundle });
    const result = await page.evaluate(
      async ({ apiKey, baseUrl }) => {
        const sdk = (globalThis as unknown as { WrennSDK: typeof import('../src/index.js') }).WrennSDK;
        const opts = { apiKey, baseUrl };
        const out: Record<string, unknown> = {
          isBrowser: typeof (globalThis as { process?: unknown }).process === 'undefined',
        };
        const c = await sdk.Capsule.create({ ...opts, timeoutSec: 300 });
        try {
          out.run = (await c.commands.run('echo from-the-browser; uname -s')).stdout;
          const chunks: string[] = [];
          const pty = await c.pty.create({
            cols: 90,
            rows: 20,
            onData: (d) => chunks.push(new TextDecoder().decode(d)),
          });
          await pty.sendInput('stty size; exit\n');
          await pty.wait();
          out.pty = chunks.join('');
          await c.files.write('/tmp/b.bin', new Uint8Array([0, 1, 2, 250, 255]));
          out.bytes = Array.from(await c.files.read('/tmp/b.bin', { format: 'bytes' }));
          try {
            await sdk.Capsule.get('cl-nothere', opts);
          } catch (e) {
            out.notFound = `${(e as Error).name}: ${(e as Error).message}`;
          }
        } finally {
          await c.destroy();
        }
        out.state = (await sdk.Capsule.get(c.capsuleId, opts)).state;
        return out;
      },
      { apiKey: live.apiKey, baseUrl: live.url },
    );
    assert.equal(result.isBrowser, true);
    assert.equal(result.run, 'from-the-browser\nLinux\n');
    assert.match(String(result.pty), /20 90/);
    assert.deepEqual(result.bytes, [0, 1, 2, 250, 255]);
    assert.match(String(result.notFound), /^NotFoundError: capsule cl-nothere not found/);
    assert.equal(result.state, 'stopped');
  });
});
