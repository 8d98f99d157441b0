// The volume contract's rules at their edges: names, sizes, mount paths (reserved places, '..',
// overlaps) and content API paths, which every API, the agent and the CLI check with.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  isVolumeContentOp,
  VOLUME_CONTENT_OPS,
  VOLUME_LIMITS,
  volumeContentPath,
  volumeMountPathProblem,
  volumeMountsProblem,
  volumeNameProblem,
  volumeSizeProblem,
} from '../src/contract/index.js';

describe('volume contract', () => {
  it('names', () => {
    for (const ok of ['a', 'data-1', 'A.b_c', 'x'.repeat(VOLUME_LIMITS.maxNameLength)])
      assert.equal(volumeNameProblem(ok), undefined, ok);
    for (const bad of ['', '-a', '.a', 'a/b', 'a b', 'ü', 'x'.repeat(VOLUME_LIMITS.maxNameLength + 1), 7])
      assert.ok(volumeNameProblem(bad), String(bad));
  });

  it('sizes', () => {
    assert.equal(volumeSizeProblem(undefined), undefined);
    assert.equal(volumeSizeProblem(VOLUME_LIMITS.minSizeMb), undefined);
    assert.equal(volumeSizeProblem(VOLUME_LIMITS.maxSizeMb), undefined);
    for (const bad of [VOLUME_LIMITS.minSizeMb - 1, VOLUME_LIMITS.maxSizeMb + 1, 16.5, '32'])
      assert.ok(volumeSizeProblem(bad), String(bad));
  });

  it('mount paths: absolute, normalised, clear of the runtime', () => {
    for (const ok of ['/data', '/mnt/v', '/home/user/work', '/etcx', '/opt/other', '/procfs'])
      assert.equal(volumeMountPathProblem(ok), undefined, ok);
    for (const bad of [
      'data',
      '/',
      '/a/../b',
      '/a/./b',
      '/a//b',
      '/a/',
      '/proc',
      '/proc/x',
      '/sys/fs',
      '/dev/shm',
      '/etc',
      '/etc/ssl',
      '/opt/wrenn',
      '/opt/wrenn/envd',
      '/opt',
      '/a:b',
      '/a\nb',
      `/${'x'.repeat(VOLUME_LIMITS.maxMountPathLength)}`,
    ])
      assert.ok(volumeMountPathProblem(bad), bad);
  });

  it('mount lists: no overlaps, bounded', () => {
    assert.equal(
      volumeMountsProblem([
        { name: 'a', path: '/a' },
        { name: 'b', path: '/ab' },
      ]),
      undefined,
    );
    assert.match(
      volumeMountsProblem([
        { name: 'a', path: '/a' },
        { name: 'b', path: '/a/b' },
      ]) ?? '',
      /overlap/,
    );
    assert.match(
      volumeMountsProblem([
        { name: 'a', path: '/a' },
        { name: 'a', path: '/a' },
      ]) ?? '',
      /overlap/,
    );
    const many = Array.from({ length: VOLUME_LIMITS.maxMountsPerCapsule + 1 }, (_, i) => ({
      name: 'v',
      path: `/m${i}`,
    }));
    assert.match(volumeMountsProblem(many) ?? '', /at most/);
  });

  it("content paths: root-relative, '..' refused", () => {
    assert.deepEqual(volumeContentPath('/'), { parts: [] });
    assert.deepEqual(volumeContentPath(''), { parts: [] });
    assert.deepEqual(volumeContentPath('/a//b/./c/'), { parts: ['a', 'b', 'c'] });
    for (const bad of ['..', '/a/../b', '../../etc/passwd', 'a\0b', `/${'x'.repeat(256)}`, 5])
      assert.ok('problem' in volumeContentPath(bad), String(bad));
  });

  it('content operations: the seven the APIs and the agent know, nothing else', () => {
    for (const op of VOLUME_CONTENT_OPS) assert.ok(isVolumeContentOp(op), op);
    for (const bad of ['', 'STAT', 'rm', 'stat ', '__proto__', 'toString', 7, null, undefined])
      assert.equal(isVolumeContentOp(bad), false, String(bad));
  });
});
