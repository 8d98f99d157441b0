// The Dockerfile parser and COPY planning, without a live system: every instruction form Wrenn
// accepts, and the errors (with line numbers) for what it does not.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BuildContextError, makeContext, planCopy } from '../src/templates/build-context.js';
import { DockerfileError, parseDockerfile, splitWords, substitute } from '../src/templates/dockerfile.js';

const errLine = (text: string): { line: number; problem: string } => {
  try {
    parseDockerfile(text);
  } catch (err) {
    assert.ok(err instanceof DockerfileError, `expected DockerfileError, got ${String(err)}`);
    return { line: err.line, problem: err.problem };
  }
  assert.fail(`parsed without error: ${JSON.stringify(text)}`);
};

describe('Dockerfile parser', () => {
  it('reads every supported instruction, continuations and comments', () => {
    const p = parseDockerfile(
      [
        '# syntax comment',
        'from base',
        '',
        'ENV A=1 B="two words" \\',
        '    # a comment inside a continuation is dropped',
        '    C=3',
        'ENV LEGACY value with spaces',
        'WORKDIR /opt/$A',
        'USER user:user',
        'RUN echo one && \\',
        '    echo two',
        'RUN ["python3", "-c", "print(1)"]',
        'COPY --chown=user:user --chmod=0755 a.txt b/ /dst/',
        'ADD ["c d.txt", "/e.txt"]',
        'EXPOSE 8080',
        'ENTRYPOINT ["python3", "-m"]',
        'CMD http.server 8000',
        'HEALTHCHECK --interval=5s CMD curl -f http://127.0.0.1:8000/',
      ].join('\n'),
    );
    assert.equal(p.from, 'base');
    assert.equal(p.fromLine, 2);
    const kinds = p.steps.map((s) => `${s.kind}@${s.line}`);
    assert.deepEqual(kinds, [
      'ENV@4',
      'ENV@7',
      'WORKDIR@8',
      'USER@9',
      'RUN@10',
      'RUN@12',
      'COPY@13',
      'COPY@14',
      'ENTRYPOINT@16',
      'CMD@17',
      'READY@18',
    ]);
    const s = p.steps;
    assert.deepEqual(s[0]!.kind === 'ENV' && s[0]!.vars, [
      ['A', '1'],
      ['B', 'two words'],
      ['C', '3'],
    ]);
    assert.deepEqual(s[1]!.kind === 'ENV' && s[1]!.vars, [['LEGACY', 'value with spaces']]);
    assert.deepEqual(s[4]!.kind === 'RUN' && s[4]!.argv, ['/bin/sh', '-c', 'echo one && echo two']);
    assert.deepEqual(s[5]!.kind === 'RUN' && s[5]!.argv, ['python3', '-c', 'print(1)']);
    const copy = s[6]!;
    assert.ok(copy.kind === 'COPY');
    assert.deepEqual([copy.sources, copy.dest, copy.chown, copy.chmod], [['a.txt', 'b/'], '/dst/', 'user:user', 0o755]);
    const add = s[7]!;
    assert.ok(add.kind === 'COPY');
    assert.deepEqual([add.sources, add.dest], [['c d.txt'], '/e.txt']);
    assert.equal(s[8]!.kind === 'ENTRYPOINT' && s[8]!.command, 'python3 -m');
    assert.equal(s[10]!.kind === 'READY' && s[10]!.command, 'curl -f http://127.0.0.1:8000/');
  });

  it('takes the ready check from a # wrenn:ready directive', () => {
    const p = parseDockerfile('FROM minimal\n# wrenn:ready test -e /tmp/up\nCMD touch /tmp/up\n');
    const ready = p.steps.find((s) => s.kind === 'READY');
    assert.equal(ready?.kind === 'READY' && ready.command, 'test -e /tmp/up');
  });

  it('reads HEALTHCHECK options: --start-period bounds the ready check', () => {
    const ready = (text: string) => {
      const s = parseDockerfile(`FROM base\n${text}\n`).steps[0]!;
      assert.ok(s.kind === 'READY');
      return [s.command, s.timeoutMs];
    };
    assert.deepEqual(ready('HEALTHCHECK --start-period=1m30s --retries=3 CMD ["test", "-e", "/x y"]'), [
      "test -e '/x y'",
      90_000,
    ]);
    assert.deepEqual(ready('HEALTHCHECK --interval=500ms CMD true'), ['true', null]);
    assert.deepEqual(ready('HEALTHCHECK NONE'), [null, null]);
    assert.match(errLine('FROM base\nHEALTHCHECK --bogus=1 CMD true\n').problem, /unknown HEALTHCHECK option --bogus/);
    assert.match(errLine('FROM base\nHEALTHCHECK --start-period=soon CMD true\n').problem, /not a duration/);
  });

  it('names the line and the problem of bad input', () => {
    assert.deepEqual(errLine('FROM base\nRUN echo hi\nFOO bar\n'), {
      line: 3,
      problem:
        "unknown instruction 'FOO' (supported: FROM, RUN, COPY, ADD, ENV, WORKDIR, USER, CMD, ENTRYPOINT, HEALTHCHECK, EXPOSE, LABEL)",
    });
    assert.equal(errLine('RUN echo\n').line, 1);
    assert.match(errLine('RUN echo\n').problem, /before FROM/);
    assert.match(errLine('FROM base\n\nENV 1BAD=x\n').problem, /not a valid environment variable name/);
    assert.equal(errLine('FROM base\n\nENV 1BAD=x\n').line, 3);
    assert.match(errLine('FROM base\nADD http://example.invalid/x /x\n').problem, /URL/);
    assert.match(errLine('FROM base\nCOPY ../secret /x\n').problem, /inside the build context/);
    assert.match(errLine('FROM base AS b\nCOPY --from=b /a /b\n').problem, /cannot copy from itself/);
    assert.match(errLine('FROM base\nRUN ["unterminated"\n').problem, /not a valid JSON array/);
    assert.match(errLine('FROM base\nENV A="open\n').problem, /unterminated/);
    assert.equal(errLine('FROM base\nRUN echo \\\n').line, 2);
    assert.deepEqual(errLine('FROM base AS a\nFROM minimal AS A\n'), {
      line: 2,
      problem: "AS a: a stage named 'a' is already defined on line 1",
    });
    assert.match(errLine('FROM Not_A_Template\n').problem, /neither a Wrenn template name .* nor a container image/);
    assert.match(errLine('FROM x:y:z\n').problem, /nor a container image reference/);
    // Container images: a registry, a path, a tag or a digest makes the FROM word an image reference.
    for (const image of ['python:3.12-slim', '127.0.0.1:5000/team/app:v1', `ghcr.io/o/i@sha256:${'a'.repeat(64)}`])
      assert.equal(parseDockerfile(`FROM ${image}\nRUN true\n`).from, image);
    assert.equal(parseDockerfile('FROM base:latest\n').from, 'base');
    assert.match(errLine('FROM base\nARG 1X=1\n').problem, /ARG '1X' is not a valid name/);
    assert.match(errLine('FROM base\nUSER a b\n').problem, /USER takes one user/);
    assert.match(errLine('FROM base\nCOPY onlyone\n').problem, /source and a destination/);
    assert.match(errLine('FROM base\nHEALTHCHECK curl x\n').problem, /HEALTHCHECK must be/);
    assert.match(errLine('FROM base\nWORKDIR\n').problem, /needs arguments/);
    assert.match(errLine('').problem, /empty/);
    assert.match(errLine('# only a comment\n').problem, /no FROM/);
  });

  it('splits words and substitutes variables as a shell would', () => {
    assert.deepEqual(splitWords(`a "b c" 'd e' f\\ g`, 1), ['a', 'b c', 'd e', 'f g']);
    assert.equal(substitute('$HOME/${APP}/x\\$y', { HOME: '/root', APP: 'app' }), '/root/app/x$y');
    assert.equal(substitute('$MISSING-x', {}), '-x');
  });
});

describe('COPY planning', () => {
  const ctx = makeContext([
    ['pkg/pyproject.toml', { data: Buffer.from('[project]'), mode: 0o644 }],
    ['pkg/src/m.py', { data: Buffer.from('x = 1'), mode: 0o600 }],
    ['notes.txt', { data: Buffer.from('hi'), mode: 0o644 }],
    ['./a.sh', { data: Buffer.from('#!/bin/sh'), mode: 0o755 }],
  ]);
  const copy = (text: string) => {
    const s = parseDockerfile(`FROM base\n${text}\n`).steps[0]!;
    assert.ok(s.kind === 'COPY');
    return s;
  };

  it('maps files, directories, globs and the whole context as Docker does', () => {
    const d = (t: string, wd = '') => {
      const s = copy(t);
      return planCopy(s, s.dest, wd, ctx)
        .entries.map((e) => `${e.dest}:${e.file.mode.toString(8)}`)
        .sort();
    };
    assert.deepEqual(d('COPY notes.txt /etc/n.txt'), ['/etc/n.txt:644']);
    assert.deepEqual(d('COPY notes.txt /etc/'), ['/etc/notes.txt:644']);
    assert.deepEqual(d('COPY pkg ./pkg', '/opt/app'), ['/opt/app/pkg/pyproject.toml:644', '/opt/app/pkg/src/m.py:600']);
    assert.deepEqual(d('COPY *.txt a.sh /x'), ['/x/a.sh:755', '/x/notes.txt:644']);
    assert.deepEqual(d('COPY --chmod=700 . /all/').length, 4);
    assert.ok(d('COPY --chmod=700 . /all/').every((e) => e.endsWith(':700')));
  });

  it('hashes content, so a changed file changes the cache key', () => {
    const s = copy('COPY pkg /p');
    const a = planCopy(s, s.dest, '', ctx).contentHash;
    const changed = makeContext(
      [...ctx].map(([p, f]) => [p, p === 'pkg/src/m.py' ? { ...f, data: Buffer.from('x = 2') } : f]),
    );
    assert.equal(planCopy(s, s.dest, '', ctx).contentHash, a);
    assert.notEqual(planCopy(s, s.dest, '', changed).contentHash, a);
  });

  it('names the line of a source that is not in the context, and refuses escaping paths', () => {
    const s = copy('COPY missing.txt /x');
    assert.throws(
      () => planCopy(s, s.dest, '', ctx),
      (err: unknown) => err instanceof DockerfileError && err.line === 2 && /missing\.txt/.test(err.message),
    );
    assert.throws(() => makeContext([['../x', { data: Buffer.alloc(0), mode: 0o644 }]]), BuildContextError);
    assert.throws(() => makeContext([['/etc/passwd', { data: Buffer.alloc(0), mode: 0o644 }]]), BuildContextError);
  });
});
