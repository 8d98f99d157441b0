// Volume mount paths looked up in a template's layers as overlayfs would: a symlink or a file on
// the way is refused, a whiteout hides what lower layers have, a missing path is fine.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { InvalidArgumentError } from '@wrenn/protocol';
import { checkVolumePathsInLayers } from '../src/runtimes/namespace/volume-paths.js';

const root = mkdtempSync(join(tmpdir(), 'wrenn-volume-paths-'));
after(() => rmSync(root, { recursive: true, force: true }));

it('refuses symlinks and files on the way, honours whiteouts, accepts what is missing', () => {
  const top = join(root, 'top');
  const low = join(root, 'low');
  for (const d of ['top/srv', 'low/srv/data', 'low/home/user', 'low/evil'])
    mkdirSync(join(root, d), { recursive: true });
  symlinkSync('/etc', join(low, 'link'));
  symlinkSync('/etc', join(top, 'evil')); // the top layer turns a directory into a symlink
  writeFileSync(join(low, 'file'), 'x');
  const layers = [top, low];
  checkVolumePathsInLayers(layers, ['/srv/data', '/home/user/work', '/new/place']);
  assert.throws(() => checkVolumePathsInLayers(layers, ['/link/x']), InvalidArgumentError);
  assert.throws(() => checkVolumePathsInLayers(layers, ['/evil']), /symlink in the template/);
  assert.throws(() => checkVolumePathsInLayers(layers, ['/file/x']), /is a file in the template/);
  if (process.getuid?.() === 0) {
    // A whiteout over the lower layer's symlink: the path is gone, the runtime makes it.
    execFileSync('mknod', [join(top, 'link'), 'c', '0', '0']);
    checkVolumePathsInLayers(layers, ['/link/x']);
  }
});
