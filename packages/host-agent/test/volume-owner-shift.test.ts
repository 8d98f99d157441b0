// shiftOwners moves a volume's files between the canonical id range and plain guest ids: every
// file, directory and link (not its target) below the top, ids outside the range left alone,
// and a second run in the same direction changes nothing (a shift cut short is finished by rerun).
import assert from 'node:assert/strict';
import { lstatSync } from 'node:fs';
import { lchown, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HOST_ID_BASE } from '../src/rootfs/id-map.js';
import { shiftOwners } from '../src/volumes/owner-shift.js';

const owner = (p: string) => {
  const st = lstatSync(p);
  return `${st.uid}:${st.gid}`;
};

describe('volume owner shift', { skip: process.getuid?.() === 0 ? false : 'needs root (chown)' }, () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'wrenn-owner-shift-'));
    await mkdir(join(dir, 'd/e'), { recursive: true });
    await writeFile(join(dir, 'd/e/f'), 'x');
    await writeFile(join(dir, 'outside'), 'y');
    await writeFile(join(dir, 'target'), 'z');
    await symlink('target', join(dir, 'link'));
    const B = HOST_ID_BASE;
    await lchown(dir, B, B);
    await lchown(join(dir, 'd'), B + 1000, B + 1000);
    await lchown(join(dir, 'd/e'), B, B + 5);
    await lchown(join(dir, 'd/e/f'), B + 1000, B + 100);
    await lchown(join(dir, 'outside'), 200_000, 200_000); // outside the range: never touched
    await lchown(join(dir, 'target'), B, B);
    await lchown(join(dir, 'link'), B + 1000, B + 1000);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('shifts to guest ids and back, links themselves, idempotently', async () => {
    assert.equal(await shiftOwners(dir, 'guest'), 7);
    assert.deepEqual(
      ['', 'd', 'd/e', 'd/e/f', 'outside', 'target', 'link'].map((p) => owner(join(dir, p))),
      ['0:0', '1000:1000', '0:5', '1000:100', '200000:200000', '0:0', '1000:1000'],
    );
    await shiftOwners(dir, 'guest');
    assert.equal(owner(join(dir, 'd/e/f')), '1000:100', 'a second run changes nothing');
    await shiftOwners(dir, 'canonical');
    const B = HOST_ID_BASE;
    assert.deepEqual(
      ['', 'd/e/f', 'outside', 'link'].map((p) => owner(join(dir, p))),
      [`${B}:${B}`, `${B + 1000}:${B + 100}`, '200000:200000', `${B + 1000}:${B + 1000}`],
    );
  });
});
