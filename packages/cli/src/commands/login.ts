// `wrenn login`: checks a key against the API and stores it with the URL in
// ~/.config/wrenn/config.json (mode 0600), so later commands need no environment variables.
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { Template } from '@wrenn/sdk';
import { CliError, configPath, DEFAULT_BASE_URL, readConfig, run } from './support.js';

async function ask(question: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: process.stdin.isTTY === true });
  try {
    return (await rl.question(question)).trim();
  } finally {
    rl.close();
  }
}

export const login = (o: { apiKey?: string; baseUrl?: string }) =>
  run(async () => {
    const old = readConfig();
    const baseUrl = (o.baseUrl || process.env.WRENN_BASE_URL || old.baseUrl || DEFAULT_BASE_URL).replace(/\/+$/, '');
    let apiKey = o.apiKey || process.env.WRENN_API_KEY || '';
    if (!apiKey) apiKey = await ask(`API key for ${baseUrl} (wrn_...): `);
    if (!apiKey) throw new CliError('no API key given: pass --api-key wrn_... (the key `wrenn up` printed)');
    // A cheap authenticated call proves the key and the URL before anything is stored.
    await Template.list({ apiKey, baseUrl });
    const file = configPath();
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    writeFileSync(file, `${JSON.stringify({ apiKey, baseUrl }, null, 2)}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
    process.stderr.write(`logged in to ${baseUrl}; key stored in ${file}\n`);
  });
