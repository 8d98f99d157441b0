#!/usr/bin/env node
// Builds the addon with node-gyp against the headers of the running node (no header download):
// the node-gyp npm itself ships (npm_config_node_gyp during npm install), else npm's copy next to node.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const prefix = dirname(dirname(process.execPath));
const nodedir = existsSync(join(prefix, 'include/node/node_api.h')) ? prefix : undefined;
const candidates = [
  process.env.npm_config_node_gyp,
  join(prefix, 'lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
].filter(Boolean);
const gyp = candidates.find((p) => existsSync(p));
if (!gyp) {
  console.error('@wrenn/native: node-gyp not found (it ships with npm); install npm or set npm_config_node_gyp');
  process.exit(1);
}
if (!nodedir)
  console.error(`@wrenn/native: no node headers under ${prefix}/include/node; node-gyp may try to download them`);
const r = spawnSync(process.execPath, [gyp, 'rebuild', ...(nodedir ? [`--nodedir=${nodedir}`] : [])], {
  cwd: here,
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
