// ARG and multi-stage Dockerfiles without a live system: Docker's ARG scoping (global ARGs in FROM
// lines, per-stage ARGs, build arguments over defaults), stage references (FROM <stage>, COPY
// --from by name, index or template), which stages the final one needs, the ARG part of step
// cache keys, and the errors (with line numbers) for bad ARG and stage names.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BUILD_LOG, buildArgsProblem, buildProgress, TEMPLATE_BUILD_LIMITS } from '@wrenn/protocol';
import { StageArgs } from '../src/templates/build-args.js';
import {
  type ArgStep,
  DockerfileError,
  neededStages,
  parseDockerfile,
  type Step,
  stagesOf,
  substitute,
} from '../src/templates/dockerfile.js';

const errOf = (text: string, args: Record<string, string> = {}): { line: number; problem: string } => {
  try {
    parseDockerfile(text, args);
  } catch (err) {
    assert.ok(err instanceof DockerfileError, `expected DockerfileError, got ${String(err)}`);
    return { line: err.line, problem: err.problem };
  }
  assert.fail(`parsed without error: ${JSON.stringify(text)}`);
};

/** Runs a stage's ARG/ENV steps as the builder does; returns the variables in scope at the end. */
function scopeOf(text: string, stage: number, args: Record<string, string> = {}): Record<string, string> {
  const p = parseDockerfile(text, args);
  const scope = new StageArgs(p);
  const env: Record<string, string> = {};
  for (const s of stagesOf(p)[stage]!.steps) {
    if (s.kind === 'ARG') scope.declare(s, env);
    if (s.kind === 'ENV') for (const [k, v] of s.vars) env[k] = substitute(v, scope.vars(env));
  }
  return scope.vars(env);
}

const MULTI = `ARG BASE=minimal
ARG VERSION=1.0
FROM \${BASE} AS build
ARG VERSION
ARG FLAVOUR=plain
RUN echo building $VERSION-$FLAVOUR > /out.txt

FROM base AS unused
RUN echo never

FROM build AS tested
RUN test -s /out.txt

FROM minimal
COPY --from=tested /out.txt /app/
COPY --from=0 /etc/hostname /app/hostname
COPY --from=tools /usr/bin/thing /usr/local/bin/thing
CMD ["cat", "/app/out.txt"]
`;

describe('ARG', () => {
  it('uses global ARGs in FROM lines and build arguments over their defaults', () => {
    assert.equal(stagesOf(parseDockerfile(MULTI))[0]!.from, 'minimal');
    assert.equal(stagesOf(parseDockerfile(MULTI, { BASE: 'base' }))[0]!.from, 'base');
    assert.equal(parseDockerfile('ARG T\nFROM ${T:-base}\n').from, 'base');
    assert.equal(parseDockerfile('ARG T\nFROM ${T:-base}\n', { T: 'minimal' }).from, 'minimal');
    assert.deepEqual(parseDockerfile(MULTI, { VERSION: '2', NOPE: 'x' }).unusedBuildArgs, ['NOPE']);
  });

  it('follows Docker scoping: a stage sees a global ARG only when it declares it again', () => {
    assert.deepEqual(scopeOf(MULTI, 0), { VERSION: '1.0', FLAVOUR: 'plain' });
    assert.deepEqual(scopeOf(MULTI, 0, { VERSION: '2.5', FLAVOUR: 'x' }), { VERSION: '2.5', FLAVOUR: 'x' });
    // Stage 2 continues stage 0 but declares no ARG: nothing is in scope.
    assert.deepEqual(scopeOf(MULTI, 2, { VERSION: '2.5' }), {});
    // ENV wins over an ARG of the same name; a default may use earlier variables; an ARG with no
    // value and no global stays unset.
    const text = 'FROM base\nARG A=1\nARG B=${A}-b\nARG C\nENV A=env\n';
    assert.deepEqual(scopeOf(text, 0), { A: 'env', B: '1-b' });
    assert.deepEqual(scopeOf(text, 0, { C: 'given' }), { A: 'env', B: '1-b', C: 'given' });
    const multi = parseDockerfile('FROM base\nARG X=1 Y\n').steps as ArgStep[];
    assert.deepEqual(
      multi.map((s) => [s.name, s.defaultValue, s.line]),
      [
        ['X', '1', 2],
        ['Y', null, 2],
      ],
    );
  });

  it('makes ARG values part of the cache key where a step uses them', () => {
    const text = 'FROM base\nARG V=1\nARG W=2\nRUN make\nCOPY a.txt /opt/$V/\nENV X=y\n';
    const keys = (args: Record<string, string>) => {
      const p = parseDockerfile(text, args);
      const scope = new StageArgs(p);
      return p.steps.map((s: Step) => {
        if (s.kind === 'ARG') scope.declare(s, {});
        return scope.keyPart(s);
      });
    };
    const plain = keys({});
    assert.deepEqual(plain, [
      '',
      '',
      JSON.stringify([
        ['V', '1'],
        ['W', '2'],
      ]),
      JSON.stringify([['V', '1']]),
      '',
    ]);
    const other = keys({ W: '3' });
    assert.notEqual(other[2], plain[2], 'a RUN sees every ARG in scope');
    assert.equal(other[3], plain[3], 'a COPY only the ARGs it names');
  });

  it('refuses bad ARG names and bad build arguments with the line or the field', () => {
    assert.deepEqual(errOf('FROM base\n\nARG 9lives=1\n'), {
      line: 3,
      problem: "ARG '9lives' is not a valid name (letters, digits, _; not starting with a digit)",
    });
    assert.deepEqual(errOf('ARG\nFROM base\n'), { line: 1, problem: 'ARG needs arguments' });
    assert.match(errOf('ARG B\nFROM $B\n').problem, /empty after ARG substitution/);
    assert.match(errOf('ENV A=1\nFROM base\n').problem, /before FROM.*only ARG/);
    assert.equal(buildArgsProblem({ OK_1: 'x' }), undefined);
    assert.match(buildArgsProblem({ 'bad-name': 'x' }) ?? '', /build_args key 'bad-name' is not a valid ARG name/);
    assert.match(buildArgsProblem({ A: 1 }) ?? '', /build_args.A must be a string/);
    assert.match(buildArgsProblem({ A: 'x\0' }) ?? '', /NUL/);
    assert.match(buildArgsProblem(['A=1']) ?? '', /must be an object/);
    const many = Object.fromEntries(
      Array.from({ length: TEMPLATE_BUILD_LIMITS.maxBuildArgs + 1 }, (_, i) => [`A${i}`, '']),
    );
    assert.match(buildArgsProblem(many) ?? '', /at most 64 arguments/);
    assert.match(buildArgsProblem({ A: 'x'.repeat(70_000) }) ?? '', /at most 65536 bytes/);
  });
});

describe('multi-stage', () => {
  it('reads stages, their FROM and COPY --from references', () => {
    const p = parseDockerfile(MULTI);
    const stages = stagesOf(p);
    assert.deepEqual(
      stages.map((s) => [s.index, s.name, s.from, s.fromLine, s.fromStage]),
      [
        [0, 'build', 'minimal', 3, null],
        [1, 'unused', 'base', 8, null],
        [2, 'tested', 'build', 11, 0],
        [3, null, 'minimal', 14, null],
      ],
    );
    assert.equal(p.from, 'minimal');
    assert.equal(p.fromLine, 14);
    assert.equal(p.steps, stages[3]!.steps);
    const froms = p.steps.flatMap((s) => (s.kind === 'COPY' ? [s.from] : []));
    assert.deepEqual(froms, [{ stage: 2 }, { stage: 0 }, { template: 'tools' }]);
  });

  it('builds only the stages the final one needs', () => {
    assert.deepEqual(neededStages(parseDockerfile(MULTI)), [0, 2, 3]);
    assert.deepEqual(neededStages(parseDockerfile('FROM base AS a\nRUN x\nFROM minimal\nRUN y\n')), [1]);
    assert.deepEqual(neededStages(parseDockerfile('FROM base\n')), [0]);
    // Stage names are matched without regard to case, as Docker does.
    assert.deepEqual(
      neededStages(parseDockerfile('FROM base AS Build\nFROM minimal\nCOPY --from=BUILD /a /a\n')),
      [0, 1],
    );
  });

  it('refuses bad stage names and references with the line', () => {
    assert.deepEqual(errOf('FROM base AS 1st\n'), {
      line: 1,
      problem: "AS 1st: '1st' is not a valid stage name (a letter, then letters, digits, '.', '_' or '-'; at most 63)",
    });
    assert.match(errOf('FROM base as\n').problem, /FROM takes one template or stage name/);
    assert.match(errOf('FROM base AS a extra\n').problem, /FROM takes one template or stage name/);
    assert.deepEqual(errOf('FROM base\nCOPY --from=later /a /b\nFROM minimal AS later\n'), {
      line: 2,
      problem: "COPY --from=later: stage 'later' is defined later; a stage can only copy from earlier ones",
    });
    assert.match(errOf('FROM b2\nFROM base AS b2\n').problem, /stage 'b2' is defined later/);
    assert.match(errOf('FROM base\nCOPY --from=1 /a /b\n').problem, /stage 1 is not an earlier stage/);
    assert.match(
      errOf('FROM base\nCOPY --from=Bad_Name! /a /b\n').problem,
      /neither a stage of this Dockerfile nor a template/,
    );
    assert.match(errOf('FROM base AS a\nFROM base\nADD --from=a /x /b\n').problem, /ADD --from is not supported/);
    assert.match(errOf('FROM base AS a\nFROM base\nCOPY --from=$X /x /b\n').problem, /variables are not supported/);
    assert.match(errOf('FROM base\nCOPY --from= /x /b\n').problem, /needs a stage or template name/);
    // A stage may share its name with the template it starts from.
    assert.equal(stagesOf(parseDockerfile('FROM base AS base\nFROM base\n'))[1]!.fromStage, 0);
  });
});

describe('build progress from the log', () => {
  it('reads steps n/N, cached and saved layers, the stage, the newest output line and the outcome', () => {
    const log = [
      "Building template 't' FROM minimal (3 steps in 2 of 3 stages), build bld-1",
      "Stage 'make' FROM minimal",
      BUILD_LOG.step(1, 3, 'ARG WHO'),
      BUILD_LOG.step(2, 3, 'RUN make'),
      BUILD_LOG.cached('layer-abc'),
      'Stage #2 FROM minimal',
      BUILD_LOG.step(3, 3, 'COPY --from=make /m /m'),
      'pulling layer 2/3 (12.5 MB)',
    ].join('\n');
    const running = buildProgress(log);
    assert.equal(running.total, 3);
    assert.equal(running.stage, '#2');
    assert.equal(running.lastLine, 'pulling layer 2/3 (12.5 MB)');
    assert.equal(running.outcome, null);
    assert.deepEqual(
      running.steps.map((s) => [s.n, s.state]),
      [
        [1, 'done'],
        [2, 'cached'],
        [3, 'running'],
      ],
    );
    const done = buildProgress(`${log}\n${BUILD_LOG.saved('layer-def', 1.2)}\n${BUILD_LOG.ready('t', 'tpl-1', 3)}\n`);
    assert.equal(done.outcome, 'ready');
    assert.deepEqual(
      done.steps.map((s) => s.state),
      ['done', 'cached', 'done'],
    );
    const failed = buildProgress(`${log}\n${BUILD_LOG.error('step 3/3 (line 7) COPY --from: boom')}\n`);
    assert.equal(failed.outcome, 'error');
    assert.equal(failed.steps[2]!.state, 'failed');
    assert.deepEqual(buildProgress(''), { total: null, steps: [], stage: null, lastLine: null, outcome: null });
  });
});
