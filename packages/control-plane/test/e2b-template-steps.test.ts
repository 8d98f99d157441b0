// The e2b SDK's build request mapped onto the builder's steps (api/e2b/template-steps.ts), template
// names with tags, build log pages, and the checks an uploaded file set passes before it is kept
// (templates/file-sets.ts): pure functions and real tar files, no capsules.
import assert from 'node:assert/strict';
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { logEntriesOf } from '../src/api/e2b/template-builds.js';
import { copySourceRoot, mapBuildStart } from '../src/api/e2b/template-steps.js';
import { uploadBase } from '../src/api/e2b/template-uploads.js';
import type { TemplateBuild } from '../src/db/repositories/template-builds.js';
import { parseTemplateRef } from '../src/services/template-refs.js';
import { checkFileSet } from '../src/templates/file-sets.js';
import { type TarEntry, tarOf } from './uploads.js';

const HASH = 'a'.repeat(64);

describe('E2B build steps', () => {
  it('gives the upload URL on the host the client called, with the scheme the server serves', () => {
    // E2B_DOMAIN mode: the SDK called https://api.<domain>, whose certificate names no IP address.
    assert.equal(uploadBase('https://127.89.0.1:443', 'api.wrenn.test'), 'https://api.wrenn.test');
    assert.equal(uploadBase('http://127.0.0.1:8000/', '127.0.0.1:8000'), 'http://127.0.0.1:8000');
    assert.equal(uploadBase('http://127.0.0.1:8000', 'lb.example.com:8080'), 'http://lb.example.com:8080');
    // No Host, or one that is not a plain host[:port]: the configured URL, never the header's text.
    for (const bad of [undefined, '', 'evil.com/x?', 'a b', 'evil.com@x', 'x:99999999', `${'a'.repeat(300)}.com`]) {
      assert.equal(uploadBase('https://127.89.0.1:443', bad), 'https://127.89.0.1:443', String(bad));
    }
  });

  it('finds the directory a COPY source unpacks from', () => {
    assert.equal(copySourceRoot('folder/*'), 'folder');
    assert.equal(copySourceRoot('folder'), 'folder');
    assert.equal(copySourceRoot('./folder/'), 'folder');
    assert.equal(copySourceRoot('a/b/**/*.txt'), 'a/b');
    assert.equal(copySourceRoot('*.txt'), '.');
    assert.equal(copySourceRoot('.'), '.');
  });

  it("maps the SDK's steps, starting as E2B's build user", () => {
    const m = mapBuildStart({
      fromImage: 'e2bdev/base',
      startCmd: 'node server.js',
      readyCmd: 'sleep 1',
      force: false,
      steps: [
        { type: 'RUN', args: ['apt-get update', 'root'], force: true },
        { type: 'COPY', args: ['app/*', 'app', 'user', '0755'], filesHash: HASH },
        { type: 'ENV', args: ['A', '1', 'B', 'two words'] },
        { type: 'WORKDIR', args: ['/srv'] },
        { type: 'USER', args: ['root'] },
      ],
    });
    assert.deepEqual(m.from, { template: 'base' });
    assert.deepEqual(m.filesHashes, [HASH]);
    assert.deepEqual(
      m.steps.map((s) => s.kind),
      ['USER', 'RUN', 'COPY_ARCHIVE', 'ENV', 'WORKDIR', 'USER', 'START', 'READY'],
    );
    const [user, run, copy, env] = m.steps;
    assert.equal(user?.kind === 'USER' && user.user, 'user');
    assert.ok(run?.kind === 'RUN' && run.user === 'root' && run.force === true);
    assert.deepEqual(run?.kind === 'RUN' && run.argv, ['/bin/sh', '-c', 'apt-get update']);
    assert.ok(copy?.kind === 'COPY_ARCHIVE');
    if (copy?.kind === 'COPY_ARCHIVE') {
      assert.equal(copy.filesHash, HASH);
      assert.equal(copy.source, 'app');
      assert.equal(copy.mode, '0755');
    }
    assert.deepEqual(env?.kind === 'ENV' && env.vars, [
      ['A', '1'],
      ['B', 'two words'],
    ]);
    assert.deepEqual(mapBuildStart({ fromImage: 'python:3.12' }).from, { image: 'python:3.12' });
    assert.deepEqual(mapBuildStart({ fromTemplate: 'mine:default' }).from, { template: 'mine' });
  });

  it('refuses bad steps, naming the step', () => {
    const bad: [unknown, RegExp][] = [
      [{ steps: [] }, /exactly one of fromImage and fromTemplate/],
      [{ fromImage: 'x', fromTemplate: 'y' }, /exactly one/],
      [{ fromTemplate: 'base', steps: [{ type: 'ADD', args: ['x'] }] }, /step 1: unknown step type 'ADD'/],
      [{ fromTemplate: 'base', steps: [{ type: 'RUN', args: [] }] }, /step 1: RUN command/],
      [{ fromTemplate: 'base', steps: [{ type: 'RUN', args: ['ls', 'bad user!'] }] }, /not a user name/],
      [{ fromTemplate: 'base', steps: [{ type: 'COPY', args: ['/etc', 'x'], filesHash: HASH }] }, /inside the context/],
      [{ fromTemplate: 'base', steps: [{ type: 'COPY', args: ['a/../..', 'x'], filesHash: HASH }] }, /no '\.\.'/],
      [{ fromTemplate: 'base', steps: [{ type: 'COPY', args: ['a', 'x'] }] }, /filesHash/],
      [{ fromTemplate: 'base', steps: [{ type: 'COPY', args: ['a', 'x', '', '999'], filesHash: HASH }] }, /octal/],
      [{ fromTemplate: 'base', steps: [{ type: 'ENV', args: ['A'] }] }, /pairs/],
      [{ fromTemplate: 'base', steps: [{ type: 'ENV', args: ['1A', 'x'] }] }, /not a valid environment variable/],
      [{ fromTemplate: 'base', steps: [{ type: 'USER', args: ['a b'] }] }, /USER takes a user name/],
      [{ fromTemplate: 'base', steps: [{ type: 'RUN', args: ['echo \0'] }] }, /without NUL/],
      [
        { fromTemplate: 'base', steps: Array.from({ length: 201 }, () => ({ type: 'RUN', args: ['true'] })) },
        /at most 200/,
      ],
    ];
    for (const [body, re] of bad)
      assert.throws(() => mapBuildStart(body as never), re, JSON.stringify(body).slice(0, 80));
  });

  it('parses name, name:tag and extra tags, refusing bad names and tags', () => {
    assert.deepEqual(parseTemplateRef('my-app'), { name: 'my-app', tags: [] });
    assert.deepEqual(parseTemplateRef('my-app:default', ['default']), { name: 'my-app', tags: ['default'] });
    assert.deepEqual(parseTemplateRef('my-app:v1.0', ['prod', 'v1.0']), { name: 'my-app', tags: ['v1.0', 'prod'] });
    assert.throws(() => parseTemplateRef('my-app:'), /tag '' is not valid/);
    assert.throws(() => parseTemplateRef(':v1'), /no template name/);
    assert.throws(() => parseTemplateRef('my-app', [':bad']), /tag ':bad' is not valid/);
    assert.throws(() => parseTemplateRef('my-app:a:b'), /tag 'a:b' is not valid/);
    assert.throws(() => parseTemplateRef('My App'), /name/);
    assert.throws(() => parseTemplateRef('layer-abc'), /reserved/);
    assert.throws(() => parseTemplateRef('kept-bld-abc:v1'), /reserved/);
  });

  it('pages the log by whole lines while a build runs', () => {
    const b = (logs: string, status: TemplateBuild['status']): TemplateBuild => ({
      id: 'bld-x',
      template: 't',
      teamId: 'team',
      status,
      logs,
      error: null,
      startedAt: new Date(),
      finishedAt: null,
      vcpus: null,
      memoryMb: null,
      failedStep: null,
    });
    assert.deepEqual(
      logEntriesOf(b('one\ntwo\npart', 'building')).map((e) => e.message),
      ['one', 'two'],
    );
    assert.deepEqual(
      logEntriesOf(b('one\nERROR: bad\npart', 'error')).map((e) => `${e.level}:${e.message}`),
      ['info:one', 'error:ERROR: bad', 'info:part'],
    );
  });
});

describe('uploaded file sets', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wrenn-file-sets-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  async function tarFile(entries: TarEntry[], gz = false) {
    const tar = await tarOf(entries);
    const path = join(dir, `t${Math.random().toString(36).slice(2)}.tar`);
    writeFileSync(path, gz ? gzipSync(tar) : tar);
    return path;
  }

  it('keeps files, directories and symlinks, gzipped or not', async () => {
    const entries = [
      { name: 'folder/', type: 'directory' },
      { name: 'folder/a.txt', body: 'a' },
      { name: 'folder/link', type: 'symlink', linkname: 'a.txt' },
    ];
    assert.deepEqual(await checkFileSet(createReadStream(await tarFile(entries))), { entries: 3, bytes: 1 });
    assert.deepEqual(await checkFileSet(createReadStream(await tarFile(entries, true))), { entries: 3, bytes: 1 });
  });

  it("refuses '..', absolute names, devices, hard links, empty and broken archives", async () => {
    const cases: [Parameters<typeof tarFile>[0], RegExp][] = [
      [[{ name: '../escape.txt', body: 'x' }], /contains '\.\.'/],
      [[{ name: 'ok/../../escape.txt', body: 'x' }], /contains '\.\.'/],
      [[{ name: '/etc/passwd', body: 'x' }], /is absolute/],
      [[{ name: 'dev', type: 'character-device' }], /only files, directories and symlinks/],
      [[{ name: 'hard', type: 'link', linkname: '/etc/shadow' }], /only files, directories and symlinks/],
      [[], /empty archive/],
    ];
    for (const [entries, re] of cases) await assert.rejects(checkFileSet(createReadStream(await tarFile(entries))), re);
    const junk = join(dir, 'junk.tar');
    writeFileSync(junk, gzipSync(Buffer.from('not a tar at all, just text '.repeat(40))));
    await assert.rejects(checkFileSet(createReadStream(junk)), /not a readable tar/);
  });
});
