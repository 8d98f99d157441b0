// Builds a template from a Dockerfile inside capsules. Each filesystem step (RUN, COPY/ADD) runs in
// a capsule made from the previous layer and is then snapshotted into a layer: a team snapshot
// template named `layer-<cache key>`. The key hashes the parent's key, the instruction text (and
// every ENV/WORKDIR/USER before it, which change what a RUN does) and, for COPY, the content of
// the copied files; a layer that already exists is reused, so a rebuild with no changes reruns
// nothing. The finished template (kind 'dockerfile') is one more snapshot on top of the last
// layer, and its configuration (ENV, WORKDIR, USER, start command, ready check) is stored with it
// and applied to every capsule started from it (services/template-config.ts).
//
// Multi-stage: only the stages the final one needs (FROM <stage>, COPY --from) are built, in file
// order; a stage's result is its last layer and its key, which the keys of steps that read it
// include. ARG values are part of the key of a step that uses them (a RUN uses every ARG in
// scope). COPY --from copies out of a capsule of the source stage (copy-from.ts).
//
// A failing step ends the build with its output and exit code; the build's capsule is destroyed
// whatever happens. Layers are kept (they are the cache); deleting them is refused by the host
// while a template still stacks on them.

import { createHash, randomUUID } from 'node:crypto';
import { posix } from 'node:path';
import {
  asDomainError,
  BUILD_LOG,
  buildArgsProblem,
  ConflictError,
  DomainError,
  domainError,
  InvalidArgumentError,
  messageOf,
  NotFoundError,
} from '@wrenn/protocol';
import type { ControlPlaneContext } from '../context.js';
import { createBuild, setBuildStatus, type TemplateBuild } from '../db/repositories/template-builds.js';
import {
  emptyTemplateConfig,
  getTemplateCacheKey,
  getTemplateConfig,
  setTemplateConfig,
  type TemplateConfig,
} from '../db/repositories/template-configs-extra.js';
import {
  resolveTemplate as resolveTemplateRow,
  type Template,
  validateTemplateName,
} from '../db/repositories/templates.js';
import { agentForCapsule, type Capsule, createCapsule, destroyCapsule } from '../services/capsules.js';
import { deleteTemplate, snapshotCapsule } from '../services/snapshots.js';
import { keepTaggedBuild } from '../services/tagged-builds.js';
import { assertNotBuiltin, resolveTemplate } from '../services/templates.js';
import { StageArgs } from './build-args.js';
import { type BuildContext, planCopy } from './build-context.js';
import { BuildLog, buildEvents } from './build-log.js';
import { type CopyFromPlan, copyBetweenCapsules } from './copy-from.js';
import {
  COPY_CHOWN_RE,
  type CopyStep,
  DockerfileError,
  neededStages,
  type ParsedDockerfile,
  parseDockerfile,
  type Stage,
  type Step,
  shellQuote,
  stagesOf,
  substitute,
} from './dockerfile.js';
import { isGzip, openFileSet } from './file-sets.js';
import { isPlainTemplateName, isStartedPull, type StartedPull, startPull } from './image-bases.js';

/** Longest a single RUN may take. */
const STEP_TIMEOUT_SEC = Number(process.env.WRENN_BUILD_STEP_TIMEOUT_SEC ?? 3600);
/** Build capsules outlive a crashed control plane by at most this long. */
const BUILD_CAPSULE_TIMEOUT_SEC = 4 * 3600;
const WRITE_CHUNK = 64 * 1024;

export interface StartBuildInput {
  name: string;
  dockerfile: string;
  context: BuildContext;
  /** ARG values (--build-arg); checked against the contract's rules. */
  buildArgs?: Record<string, string>;
}

/**
 * E2B's COPY: a tar the client uploaded (its team's file set `filesHash`, in the database) is unpacked in the
 * build capsule and `source` in it (a file, a directory whose contents are merged, or '.') is moved
 * to `dest` (relative to the workdir, else the user's home), owned by `owner`, with `mode` if given.
 */
export type ArchiveCopyStep = {
  kind: 'COPY_ARCHIVE';
  line: number;
  text: string;
  filesHash: string;
  source: string;
  dest: string;
  owner: string | null;
  mode: string | null;
};

/** A builder step; `force` reruns it and everything after it whatever the cache holds (skipCache). */
export type BuildStep = (Step | ArchiveCopyStep) & { force?: boolean };

export interface StepsBuildInput {
  /** The build recorded when the client asked for it (E2B's POST /v3/templates), status 'pending'. */
  buildId: string;
  name: string;
  /** The template it starts from, and how to name that in errors. */
  from: string;
  fromLabel: string;
  steps: BuildStep[];
  /** Run every step, using no cached layer. */
  force: boolean;
  /** Capsule defaults for the template (E2B's cpuCount/memoryMB); null keeps the usual ones. */
  vcpus?: number | null;
  memoryMb?: number | null;
}

/** The layer template name for a cache key (team-scoped like every team template). */
import { isKeptBuildName, isLayerName, layerName } from './layer-names.js';
import { applyStartStep } from './start-command.js';

export { isLayerName, layerName };

const sha = (...parts: string[]): string => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex');
};

/** Builds in progress in this process, so a stream can tell "still running" without a database round trip. */
const running = new Set<string>();
export const isBuildRunning = (id: string): boolean => running.has(id);

/**
 * Validates everything that can be checked up front (name, Dockerfile, FROM, COPY sources),
 * records the build and runs it in the background. Bad input is a 400/404/409 here, never a
 * failed build.
 */
export async function startTemplateBuild(
  ctx: ControlPlaneContext,
  teamId: string,
  input: StartBuildInput,
): Promise<TemplateBuild> {
  const argsProblem = buildArgsProblem(input.buildArgs);
  if (argsProblem) throw new InvalidArgumentError(argsProblem);
  let parsed: ParsedDockerfile;
  try {
    parsed = parseDockerfile(input.dockerfile, input.buildArgs ?? {});
  } catch (err) {
    if (err instanceof DockerfileError) throw new InvalidArgumentError(err.message, { code: 'invalid_dockerfile' });
    throw err;
  }
  await checkBuildName(ctx, teamId, input.name);
  const templates = await resolveBuildTemplates(ctx, teamId, parsed);
  for (const stage of stagesOf(parsed)) {
    const t = stage.fromStage === null ? templates.get(stage.from) : undefined;
    if (t && !isStartedPull(t))
      assertNotSelf(t, teamId, input.name, `Dockerfile line ${stage.fromLine}: FROM ${stage.from}`);
  }
  // Dry run of the config steps, so every COPY source is checked before anything runs.
  simulate(parsed, input.context);
  const build = await createBuild(ctx.database.db, { template: input.name, teamId, status: 'building' });
  const plan: BuildPlan = {
    stages: stagesOf(parsed),
    needed: neededStages(parsed),
    args: parsed,
    unusedBuildArgs: parsed.unusedBuildArgs ?? [],
    force: false,
  };
  launch(ctx, teamId, build.id, input.name, plan, templates, input.context);
  return build;
}

/**
 * Runs a build whose steps were made by the caller (E2B's template API) on the same step model and
 * layer cache as a Dockerfile build. The build must be 'pending'; bad input throws before it starts.
 */
export async function startStepsBuild(ctx: ControlPlaneContext, teamId: string, input: StepsBuildInput): Promise<void> {
  await checkBuildName(ctx, teamId, input.name);
  const pulls: string[] = [];
  const label = `${input.fromLabel} ${input.from}`;
  const base = await resolveNamed(ctx, teamId, input.from, label);
  const from = isStartedPull(base) ? await followPull(base, (line) => pulls.push(line)) : base;
  assertNotSelf(from, teamId, input.name, `${input.fromLabel} ${input.from}`);
  const updated = await setBuildStatus(ctx.database.db, input.buildId, 'building');
  if (!updated) throw new InvalidArgumentError(`build '${input.buildId}' is gone`);
  const plan: BuildPlan = {
    stages: [{ index: 0, name: null, from: input.from, fromLine: 0, fromStage: null, steps: input.steps }],
    needed: [0],
    args: {},
    unusedBuildArgs: [],
    force: input.force,
    e2b: true,
    pulls,
    vcpus: input.vcpus ?? null,
    memoryMb: input.memoryMb ?? null,
  };
  launch(ctx, teamId, input.buildId, input.name, plan, new Map([[input.from, from]]), new Map());
}

/** Checks the name a build will save under. */
async function checkBuildName(ctx: ControlPlaneContext, teamId: string, name: string): Promise<void> {
  validateTemplateName(name);
  if (isLayerName(name))
    throw new InvalidArgumentError(
      `template names starting with 'layer-' are reserved for build layers; pick another name`,
    );
  if (isKeptBuildName(name))
    throw new InvalidArgumentError(
      `template names starting with 'kept-' are reserved for tagged builds; pick another name`,
    );
  assertNotBuiltin(name, 'replaced by a build; pick another name');
  const existing = await resolveTemplateRow(ctx.database.db, teamId, name);
  if (existing && existing.teamId === teamId && existing.kind !== 'dockerfile') {
    throw new ConflictError(
      `'${name}' is already a ${existing.kind} template of this team; pick another name or delete it first`,
    );
  }
}

/**
 * Resolves a template a build reads; a failure names where (`label`: "Dockerfile line 3: FROM x").
 * A name that is not a template is a container image: its pull into the team's image template is
 * started (a missing or refused image fails here) and finished by the build (followPull).
 */
async function resolveNamed(
  ctx: ControlPlaneContext,
  teamId: string,
  name: string,
  label: string,
): Promise<Template | StartedPull> {
  const labelled = (err: unknown) => {
    const e = asDomainError(err);
    const message = `${label}: ${messageOf(e)}`;
    return e instanceof DomainError ? domainError(e.kind, message, { code: e.code, cause: err }) : new Error(message);
  };
  const plainName = isPlainTemplateName(name);
  if (plainName) {
    try {
      return await resolveTemplate(ctx, teamId, name);
    } catch (err) {
      if (!(asDomainError(err) instanceof NotFoundError)) throw labelled(err);
    }
  }
  try {
    return await startPull(ctx, teamId, name, label);
  } catch (err) {
    // A plain name that is neither a template nor a pullable image: most likely a mistyped template.
    if (plainName)
      throw new NotFoundError(
        `${label}: no template '${name}' in this team, and pulling it as a container image failed: ${messageOf(asDomainError(err))}`,
        { cause: err },
      );
    throw labelled(err);
  }
}

/** The template of a started pull once its layers are in, its lines to `out`; a failure names where. */
async function followPull(pull: StartedPull, out: (line: string) => void): Promise<Template> {
  try {
    return (await pull.follow(out)).template;
  } catch (err) {
    const e = asDomainError(err);
    const message = `${pull.label}: ${messageOf(e)}`;
    throw e instanceof DomainError ? domainError(e.kind, message, { code: e.code, cause: err }) : new Error(message);
  }
}

function assertNotSelf(from: Template, teamId: string, name: string, label: string): void {
  if (from.name === name && from.teamId === teamId)
    throw new InvalidArgumentError(`${label}: a template cannot be built from itself ('${name}')`);
}

/** One stage of a build plan: a Dockerfile's stage, or the one stage of an E2B steps build. */
type PlanStage = Omit<Stage, 'steps'> & { steps: BuildStep[] };

interface BuildPlan {
  stages: PlanStage[];
  /** The stages to build, in order; the last is the final one. */
  needed: number[];
  /** Global ARG values and build arguments (StageArgs reads them). */
  args: ConstructorParameters<typeof StageArgs>[0];
  unusedBuildArgs: string[];
  force: boolean;
  /**
   * E2B's semantics: directories WORKDIR creates belong to the current user (Docker's belong to
   * root), and a RUN fails as E2B words it (an unknown user is named before the command runs).
   */
  e2b?: boolean;
  /** Lines of the container image pulls done before the build started (for its log). */
  pulls?: string[];
  /** Capsule defaults the finished template gets (E2B's cpuCount/memoryMB). */
  vcpus?: number | null;
  memoryMb?: number | null;
}

function launch(
  ctx: ControlPlaneContext,
  teamId: string,
  buildId: string,
  name: string,
  plan: BuildPlan,
  templates: Map<string, Template | StartedPull>,
  context: BuildContext,
): void {
  running.add(buildId);
  void runBuild(ctx, teamId, buildId, name, plan, templates, context).finally(() => {
    running.delete(buildId);
    buildEvents.emit(buildId);
  });
}

/**
 * The templates the build starts from (FROM lines not naming a stage) and copies from (COPY
 * --from=<template>), of the stages it needs, by name; a missing one is an error naming its line.
 */
async function resolveBuildTemplates(
  ctx: ControlPlaneContext,
  teamId: string,
  parsed: ParsedDockerfile,
): Promise<Map<string, Template | StartedPull>> {
  const stages = stagesOf(parsed);
  const wanted: { name: string; line: number; what: string }[] = [];
  for (const i of neededStages(parsed)) {
    const st = stages[i]!;
    if (st.fromStage === null) wanted.push({ name: st.from, line: st.fromLine, what: `FROM ${st.from}` });
    for (const step of st.steps)
      if (step.kind === 'COPY' && step.from && 'template' in step.from)
        wanted.push({ name: step.from.template, line: step.line, what: `COPY --from=${step.from.template}` });
  }
  const out = new Map<string, Template | StartedPull>();
  for (const w of wanted) {
    if (!out.has(w.name))
      out.set(w.name, await resolveNamed(ctx, teamId, w.name, `Dockerfile line ${w.line}: ${w.what}`));
  }
  return out;
}

/** Dry run of the needed stages' config steps, so every COPY source in the context is checked before anything runs. */
function simulate(parsed: ParsedDockerfile, context: BuildContext): void {
  const stages = stagesOf(parsed);
  const configs = new Map<number, TemplateConfig>();
  for (const i of neededStages(parsed)) {
    const st = stages[i]!;
    const cfg: TemplateConfig =
      st.fromStage === null ? emptyTemplateConfig() : structuredClone(configs.get(st.fromStage)!);
    const args = new StageArgs(parsed);
    for (const step of st.steps) {
      try {
        if (step.kind === 'COPY') {
          if (!step.from) {
            const resolved = substituteCopy(step, args.vars(cfg.env));
            planCopy(resolved, resolved.dest, cfg.workdir, context);
          }
        } else applyConfigStep(cfg, args, step);
      } catch (err) {
        if (err instanceof DockerfileError) throw new InvalidArgumentError(err.message, { code: 'invalid_dockerfile' });
        throw err;
      }
    }
    configs.set(i, cfg);
  }
}

/** A COPY step with ARG/ENV substituted into its sources, destination and --chown. */
function substituteCopy(step: CopyStep, vars: Record<string, string>): CopyStep {
  const chown = step.chown === null ? null : substitute(step.chown, vars);
  if (chown !== null && !COPY_CHOWN_RE.test(chown))
    throw new DockerfileError(step.line, `--chown=${chown} is not user or user:group`);
  return {
    ...step,
    sources: step.sources.map((s) => substitute(s, vars)),
    dest: substitute(step.dest, vars),
    chown,
  };
}

/** Applies ARG/ENV/WORKDIR/USER/CMD/ENTRYPOINT/ready steps to the config; false for filesystem steps. */
function applyConfigStep(cfg: TemplateConfig, args: StageArgs, step: BuildStep): boolean {
  const vars = args.vars(cfg.env);
  switch (step.kind) {
    case 'ARG':
      args.declare(step, cfg.env);
      return true;
    case 'ENV':
      for (const [k, v] of step.vars) cfg.env[k] = substitute(v, args.vars(cfg.env));
      return true;
    case 'WORKDIR': {
      const p = substitute(step.path, vars);
      cfg.workdir = posix.isAbsolute(p) ? posix.normalize(p) : posix.join(cfg.workdir || '/', p);
      return true;
    }
    case 'USER':
      cfg.user = substitute(step.user, vars);
      return true;
    case 'CMD':
    case 'ENTRYPOINT':
    case 'START':
      applyStartStep(cfg, step);
      return true;
    case 'READY':
      cfg.readyCmd = step.command;
      cfg.readyTimeoutMs = step.timeoutMs;
      return true;
    default:
      return false;
  }
}

class StepFailed extends Error {}

/** What a built stage leaves for the stages after it. */
interface StageResult {
  /** The template its last layer is (or the template it started from, when it changed no files). */
  template: string;
  /** The cache key after its last step. */
  key: string;
  cfg: TemplateConfig;
}

async function runBuild(
  ctx: ControlPlaneContext,
  teamId: string,
  buildId: string,
  name: string,
  plan: BuildPlan,
  bases: Map<string, Template | StartedPull>,
  context: BuildContext,
): Promise<void> {
  const log = new BuildLog(ctx, buildId);
  const db = ctx.database.db;
  const started = Date.now();
  let capsule: Capsule | null = null;
  const dropCapsule = async () => {
    if (!capsule) return;
    const id = capsule.id;
    capsule = null;
    await destroyCapsule(ctx, teamId, id).catch((err: unknown) =>
      ctx.log.warn({ err, id, buildId }, 'could not destroy a build capsule'),
    );
  };
  /** Where the build is, for a failure's `reason.step`: 'base', a step's line (E2B: its number), 'finalize'. */
  let failedStep = 'base';
  try {
    const { stages, needed } = plan;
    const finalIndex = needed[needed.length - 1]!;
    const total = needed.reduce((n, i) => n + stages[i]!.steps.length, 0);
    const final = stages[finalIndex]!;
    log.line(
      `Building template '${name}' FROM ${final.from} (${total} step${total === 1 ? '' : 's'}${stages.length > 1 ? ` in ${needed.length} of ${stages.length} stages` : ''}), build ${buildId}`,
    );
    for (const i of stages.keys())
      if (!needed.includes(i)) log.line(`Skipping stage ${stageLabel(stages[i]!)}: the final stage does not use it`);
    for (const l of plan.pulls ?? []) log.line(l);
    // Container images FROM names: their layers arrive now, each line in the log as it comes.
    const templates = new Map<string, Template>();
    for (const [n, base] of bases) {
      if (!isStartedPull(base)) templates.set(n, base);
      else
        templates.set(
          n,
          await followPull(base, (line) => log.line(line)).catch((err: unknown) => {
            throw new StepFailed(messageOf(err));
          }),
        );
    }
    for (const unused of plan.unusedBuildArgs)
      log.line(`Warning: build argument ${unused} was not used (no ARG ${unused} in the Dockerfile)`);

    const results = new Map<number, StageResult>();
    let n = 0;
    // Once a step is forced no later layer can be a cache hit: those steps run in one capsule and
    // save no layers (nothing could ever reuse them).
    let uncached = plan.force;
    for (const si of needed) {
      const stage = stages[si]!;
      let key: string;
      let current: string;
      let cfg: TemplateConfig;
      if (stage.fromStage !== null) {
        const parent = results.get(stage.fromStage)!;
        key = sha(parent.key, 'stage');
        current = parent.template;
        cfg = structuredClone(parent.cfg);
      } else {
        const from = templates.get(stage.from)!;
        const inherited = (from.teamId ? await getTemplateConfig(db, from.id) : null) ?? emptyTemplateConfig();
        cfg = structuredClone(inherited);
        key = sha('wrenn-build-v1', from.id, String(from.createdAt.getTime()));
        current = from.name;
      }
      if (uncached) key = sha(key, randomUUID());
      if (stages.length > 1) log.line(`Stage ${stageLabel(stage)} FROM ${stage.from}`);
      const args = new StageArgs(plan.args);
      await dropCapsule();
      const ensureCapsule = async (): Promise<Capsule> => {
        if (capsule) return capsule;
        capsule = await createCapsule(ctx, teamId, {
          template: current,
          timeoutSec: BUILD_CAPSULE_TIMEOUT_SEC,
          metadata: { 'wrenn.build': buildId },
          skipTemplateStart: true,
        });
        return capsule;
      };

      for (const step of stage.steps) {
        n++;
        // Step numbers as E2B counts them (its 'base' is the FROM, line 0 our own setup step).
        failedStep = step.line > 0 ? String(step.line) : 'base';
        const head = BUILD_LOG.step(n, total, step.text);
        if (step.force && !uncached) {
          uncached = true;
          key = sha(key, randomUUID());
        }
        const argKey = step.kind === 'COPY_ARCHIVE' ? '' : args.keyPart(step);
        if (applyConfigStep(cfg, args, step)) {
          key = argKey ? sha(key, step.text, argKey) : sha(key, step.text);
          log.line(head);
          continue;
        }
        const vars = args.vars(cfg.env);
        const copyStep = step.kind === 'COPY' ? substituteCopy(step, vars) : null;
        const copy = copyStep && !copyStep.from ? planCopy(copyStep, copyStep.dest, cfg.workdir, context) : null;
        let source: { template: string; key: string; label: string } | null = null;
        if (copyStep?.from) {
          if ('stage' in copyStep.from) {
            const r = results.get(copyStep.from.stage)!;
            source = { template: r.template, key: r.key, label: `stage ${stageLabel(stages[copyStep.from.stage]!)}` };
          } else {
            const t = templates.get(copyStep.from.template)!;
            source = {
              template: t.name,
              key: sha('wrenn-template', t.id, String(t.createdAt.getTime())),
              label: `template ${t.name}`,
            };
          }
        }
        const content = copy?.contentHash ?? (step.kind === 'COPY_ARCHIVE' ? step.filesHash : '');
        key = sha(key, step.text, argKey, content, source?.key ?? '');
        const layer = layerName(key);
        const cached = uncached ? null : await completedLayer(ctx, teamId, layer, key);
        if (cached) {
          log.line(`${head}\n${BUILD_LOG.cached(layer)}`);
          // A capsule running an older layer is no longer the base of what follows.
          await dropCapsule();
          current = layer;
          continue;
        }
        log.line(head);
        const t0 = Date.now();
        const c = await ensureCapsule();
        const agent = await agentForCapsule(ctx, c);
        const where = `step ${n}/${total} (line ${step.line})`;
        await ensureWorkdir(ctx, c, cfg, plan.e2b);
        if (step.kind === 'RUN') {
          const runCfg = { ...cfg, env: vars, ...(step.user ? { user: step.user } : {}) };
          if (plan.e2b) {
            const what = `failed to run command '${step.argv[2] ?? step.argv.join(' ')}'`;
            if (step.user) await assertUserExists(ctx, c, step.user, what);
            await runIn(ctx, c, step.argv, runCfg, log, `${what}: command failed`);
          } else await runIn(ctx, c, step.argv, runCfg, log, `${where} ${step.text.slice(0, 80)}`);
        } else if (copyStep && source) {
          const dest = posix.isAbsolute(copyStep.dest)
            ? posix.normalize(copyStep.dest)
            : posix.join(cfg.workdir || '/', copyStep.dest);
          const written = await copyFromTemplate(ctx, teamId, buildId, source, c, {
            sources: copyStep.sources,
            dest,
            intoDir:
              copyStep.dest.endsWith('/') ||
              copyStep.sources.length > 1 ||
              copyStep.sources.some((s) => /[*?[]/.test(s)),
            label: source.label,
          }).catch((err: unknown) => {
            throw new StepFailed(`${where} COPY --from: ${messageOf(err)}`);
          });
          const root = { ...cfg, user: 'root', workdir: '/' };
          if (copyStep.chown)
            await runIn(ctx, c, ['chown', '-R', '--', copyStep.chown, ...written], root, log, `${where} --chown`);
          if (copyStep.chmod !== null)
            await runIn(
              ctx,
              c,
              ['chmod', '-R', copyStep.chmod.toString(8), '--', ...written],
              root,
              log,
              `${where} --chmod`,
            );
          log.line(`copied ${copyStep.sources.join(', ')} from ${source.label}`);
        } else if (copy && copyStep) {
          for (const e of copy.entries) {
            async function* messages() {
              yield {
                part: {
                  case: 'header' as const,
                  value: { capsuleId: c.id, path: e.dest, user: 'root', mode: e.file.mode },
                },
              };
              for (let off = 0; off < e.file.data.length; off += WRITE_CHUNK)
                yield { part: { case: 'data' as const, value: e.file.data.subarray(off, off + WRITE_CHUNK) } };
            }
            await agent.writeFile(messages()).catch((err: unknown) => {
              throw new StepFailed(`${where}: writing ${e.dest} failed: ${messageOf(err)}`);
            });
          }
          if (copyStep.chown) {
            const argv = ['chown', ...(copy.recursiveChown ? ['-R'] : []), '--', copyStep.chown, ...copy.chownRoots];
            await runIn(
              ctx,
              c,
              argv,
              { ...cfg, user: 'root', workdir: '/' },
              log,
              `${where} --chown=${copyStep.chown}`,
            );
          }
          log.line(`copied ${copy.entries.length} file${copy.entries.length === 1 ? '' : 's'}`);
        } else if (step.kind === 'COPY_ARCHIVE') {
          await unpackArchive(ctx, teamId, buildId, c, step, cfg, log, `step ${n}/${total} ${step.text.slice(0, 80)}`);
        }
        if (uncached) {
          log.line(` ---> done in ${((Date.now() - t0) / 1000).toFixed(1)} s (cache skipped)`);
          continue;
        }
        // A concurrent build of the same steps may have saved this layer first (409): then this
        // capsule simply goes on, its changes since `current` are saved with the next layer.
        const made = await snapshotCapsule(ctx, teamId, c, { name: layer, kind: 'snapshot' }).catch((err: unknown) => {
          if (err instanceof DomainError && (err.kind === 'conflict' || err.kind === 'already_exists')) return null;
          throw err;
        });
        if (!made) {
          log.line(` ---> ${layer} was saved by another build meanwhile; continuing in this capsule`);
          continue;
        }
        await setTemplateConfig(db, made.id, cfg, key).catch(() => undefined);
        await dropCapsule();
        current = layer;
        log.line(BUILD_LOG.saved(layer, (Date.now() - t0) / 1000));
      }
      if (si !== finalIndex) {
        // Later stages start capsules from this stage's last layer; one still running holds
        // changes a concurrent build saved under the same key, so that layer stands in for it.
        if (capsule && uncached) {
          // Forced steps saved no layers: keep what this stage made as a one-off layer.
          const layer = layerName(key);
          await snapshotCapsule(ctx, teamId, capsule, { name: layer, kind: 'snapshot' });
          current = layer;
          await dropCapsule();
        } else if (capsule) {
          const layer = layerName(key);
          if (!(await completedLayer(ctx, teamId, layer, key)))
            throw new StepFailed(
              `stage ${stageLabel(stage)}: its last layer ${layer} disappeared; run the build again`,
            );
          current = layer;
          await dropCapsule();
        }
        results.set(si, { template: current, key, cfg });
        continue;
      }

      // The finished template: a capsule of the last layer, WORKDIR made, snapshotted under the name.
      failedStep = 'finalize';
      log.line(`Saving template '${name}'`);
      const c = await ensureCapsule();
      await ensureWorkdir(ctx, c, cfg, plan.e2b);
      const old = await resolveTemplateRow(db, teamId, name);
      if (old && old.teamId === teamId) {
        if (await keepTaggedBuild(ctx, teamId, name)) {
          log.line(`keeping the previous '${name}' (${old.id}) for the tags that point at it`);
        } else {
          log.line(`replacing the previous '${name}' (${old.id})`);
          await deleteTemplate(ctx, teamId, name).catch((err: unknown) => {
            throw new StepFailed(`could not replace the existing template '${name}': ${messageOf(err)}`);
          });
        }
      }
      const saved = await snapshotCapsule(ctx, teamId, c, { name, kind: 'dockerfile' });
      await setTemplateConfig(db, saved.id, {
        ...cfg,
        vcpus: plan.vcpus ?? cfg.vcpus,
        memoryMb: plan.memoryMb ?? cfg.memoryMb,
      });
      await dropCapsule();
      log.line(BUILD_LOG.ready(name, saved.id, (Date.now() - started) / 1000));
    }
    await log.flush();
    await setBuildStatus(db, buildId, 'ready');
  } catch (err) {
    const message = err instanceof StepFailed ? err.message : `build failed: ${messageOf(err)}`;
    log.line(BUILD_LOG.error(message));
    await dropCapsule();
    await log.flush();
    await setBuildStatus(db, buildId, 'error', message, failedStep).catch((e: unknown) =>
      ctx.log.error({ err: e, buildId }, 'could not record a failed build'),
    );
  } finally {
    await dropCapsule();
  }
}

const stageLabel = (s: { name: string | null; index: number }): string => (s.name ? `'${s.name}'` : `#${s.index}`);

/** COPY --from: a capsule of the source template for the copy, destroyed afterwards whatever happens. */
async function copyFromTemplate(
  ctx: ControlPlaneContext,
  teamId: string,
  buildId: string,
  source: { template: string },
  target: Capsule,
  plan: CopyFromPlan,
): Promise<string[]> {
  const from = await createCapsule(ctx, teamId, {
    template: source.template,
    timeoutSec: BUILD_CAPSULE_TIMEOUT_SEC,
    metadata: { 'wrenn.build': buildId },
    skipTemplateStart: true,
  });
  try {
    return await copyBetweenCapsules(ctx, from, target, plan);
  } finally {
    await destroyCapsule(ctx, teamId, from.id).catch((err: unknown) =>
      ctx.log.warn({ err, id: from.id, buildId }, 'could not destroy a COPY --from capsule'),
    );
  }
}

/**
 * Runs argv in the build capsule as the config's user in its workdir with its env, streaming
 * output into the log (when given). A non-zero exit throws StepFailed with the code and the tail
 * of the output.
 */
async function runIn(
  ctx: ControlPlaneContext,
  c: Capsule,
  argv: string[],
  cfg: TemplateConfig,
  log: BuildLog | null,
  what = argv.map(shellQuote).join(' '),
): Promise<void> {
  const agent = await agentForCapsule(ctx, c);
  let tail = '';
  let exit: { exitCode: number; error: string } | null = null;
  try {
    const stream = agent.execStream({
      capsuleId: c.id,
      cmd: argv[0]!,
      args: argv.slice(1),
      envs: cfg.env,
      cwd: cfg.workdir,
      user: (cfg.user || 'root').split(':')[0]!,
      timeoutSec: STEP_TIMEOUT_SEC,
    });
    for await (const ev of stream) {
      const e = ev.event;
      if (e.case === 'stdout' || e.case === 'stderr' || e.case === 'pty') {
        const text = Buffer.from(e.value).toString('utf8');
        log?.write(text);
        tail = (tail + text).slice(-2000);
      } else if (e.case === 'exit') exit = { exitCode: e.value.exitCode, error: e.value.error };
    }
  } catch (err) {
    throw new StepFailed(`${what}: ${messageOf(err)}`);
  }
  if (!exit) throw new StepFailed(`${what}: the process ended without an exit status`);
  // The agent words a plain non-zero exit as "exit status N"; anything else (a signal, a timeout) is worth showing.
  const why = exit.error && !/^exit status \d+$/.test(exit.error) ? exit.error : '';
  if (exit.exitCode !== 0 || why) {
    throw new StepFailed(
      `${what}: exit code ${exit.exitCode}${why ? ` (${why})` : ''}${tail.trim() ? `; output ends with: ${tail.trim().slice(-500)}` : ''}`,
    );
  }
}

/** A RUN's explicit user must exist in the capsule; E2B names a missing one this way. */
async function assertUserExists(ctx: ControlPlaneContext, c: Capsule, user: string, what: string): Promise<void> {
  const name = user.split(':')[0]!;
  await runIn(ctx, c, ['id', '-u', '--', name], { ...emptyTemplateConfig(), user: 'root', workdir: '/' }, null).catch(
    (err: unknown) => {
      if (err instanceof StepFailed)
        throw new StepFailed(`${what}: command failed: unauthenticated: invalid username: '${name}'`);
      throw err;
    },
  );
}

/** Creates the workdir (as root); with `owned`, the directories it had to create go to the current user. */
const WORKDIR_SCRIPT = `set -eu
target=$1 user=$2
[ -d "$target" ] && exit 0
top=$target
while [ ! -d "$(dirname "$top")" ]; do top=$(dirname "$top"); done
mkdir -p "$target"
if [ -n "$user" ] && [ "$user" != root ]; then chown -R "$user:$(id -gn "$user")" "$top"; fi
`;

async function ensureWorkdir(ctx: ControlPlaneContext, c: Capsule, cfg: TemplateConfig, owned = false): Promise<void> {
  if (!cfg.workdir) return;
  const user = owned ? (cfg.user || 'root').split(':')[0]! : '';
  await runIn(
    ctx,
    c,
    ['/bin/sh', '-c', WORKDIR_SCRIPT, 'wrenn-workdir', cfg.workdir, user],
    { ...cfg, user: 'root', workdir: '/' },
    null,
  );
}

/**
 * Unpacks an uploaded file set in /tmp of the build capsule and moves its `source` to the
 * destination with the owner and mode asked for, removing the archive and the unpacked rest after
 * (so neither ends up in the layer). Runs as root in the capsule; positional arguments carry every
 * value, so nothing the client sent is parsed by the shell.
 */
const UNPACK_SCRIPT = `set -eu
archive=$1 source=$2 dest=$3 owner=$4 mode=$5 workdir=$6 user=$7 z=$8
tmp=$(mktemp -d /tmp/wrenn-copy.XXXXXX)
trap 'rm -rf "$tmp" "$archive"' EXIT
tar -x\${z}f "$archive" -C "$tmp"
# GNU tar keeps symlinked directories of the target (usrmerge) and their metadata; busybox has no such options.
keep=
if tar --version 2>/dev/null | grep -q GNU; then keep='--keep-directory-symlink --no-overwrite-dir'; fi
if [ -z "$workdir" ]; then workdir=$(awk -F: -v u="$user" '$1 == u { print $6 }' /etc/passwd); fi
case $dest in /*) target=$dest ;; *) target=\${workdir:-/}/$dest ;; esac
entry=$tmp/$source
if [ ! -e "$entry" ] && [ ! -L "$entry" ]; then echo "COPY: '$source' is not in the uploaded files" >&2; exit 1; fi
if [ -d "$entry" ] && [ ! -L "$entry" ]; then
  chown -R "$owner" "$entry"
  if [ -n "$mode" ]; then chmod -R "$mode" "$entry"; fi
  mkdir -p "$target"
  (cd "$entry" && tar -cf - .) | tar -xf - -C "$target" $keep
else
  chown -h "$owner" "$entry"
  if [ -n "$mode" ] && [ ! -L "$entry" ]; then chmod "$mode" "$entry"; fi
  case $target in */) mkdir -p "$target" ;; *) mkdir -p "$(dirname "$target")" ;; esac
  mv -f "$entry" "$target"
fi
`;

async function unpackArchive(
  ctx: ControlPlaneContext,
  teamId: string,
  buildId: string,
  c: Capsule,
  step: ArchiveCopyStep,
  cfg: TemplateConfig,
  log: BuildLog,
  what: string,
): Promise<void> {
  const agent = await agentForCapsule(ctx, c);
  // The read is of the set as uploaded now; a forceUpload meanwhile does not remove these chunks.
  const set = await openFileSet(ctx.database.db, teamId, step.filesHash, buildId);
  if (!set)
    throw new StepFailed(`${what}: the uploaded files (hash ${step.filesHash}) are no longer kept; build again`);
  const inCapsule = `/tmp/wrenn-files-${step.filesHash.slice(0, 16)}-${randomUUID().slice(0, 8)}.tar`;
  let head: Buffer | undefined;
  async function* messages() {
    yield { part: { case: 'header' as const, value: { capsuleId: c.id, path: inCapsule, user: 'root', mode: 0o600 } } };
    // Database chunks (1 MiB) are cut to the agent's write size; one chunk is in memory at a time.
    for await (const chunk of set!.chunks()) {
      head ??= chunk.subarray(0, 2);
      for (let at = 0; at < chunk.length; at += WRITE_CHUNK)
        yield { part: { case: 'data' as const, value: chunk.subarray(at, at + WRITE_CHUNK) } };
    }
  }
  try {
    await agent.writeFile(messages()).catch((err: unknown) => {
      throw new StepFailed(`${what}: sending the uploaded files failed: ${messageOf(err)}`);
    });
  } finally {
    await set.close().catch((err: unknown) => ctx.log.warn({ err, buildId }, 'could not end a file set read'));
  }
  const gzipped = head !== undefined && isGzip(head);
  const user = (cfg.user || 'root').split(':')[0]!;
  const owner = step.owner
    ? step.owner.includes(':')
      ? step.owner
      : `${step.owner}:${step.owner}`
    : `${user}:${user}`;
  await runIn(
    ctx,
    c,
    [
      '/bin/sh',
      '-c',
      UNPACK_SCRIPT,
      'wrenn-copy',
      inCapsule,
      step.source,
      step.dest,
      owner,
      step.mode ?? '',
      cfg.workdir,
      user,
      gzipped ? 'z' : '',
    ],
    { ...cfg, user: 'root', workdir: '/' },
    log,
    what,
  );
}

/** How long a build waits for a layer another build is still saving. */
const LAYER_WAIT_MS = 10 * 60_000;

/**
 * The layer for `key` if it exists and is complete (its cache key is recorded only after the
 * snapshot succeeded). A layer another build is still saving is waited for; one whose save fails
 * disappears, and then this build makes it itself.
 */
async function completedLayer(
  ctx: ControlPlaneContext,
  teamId: string,
  layer: string,
  key: string,
): Promise<Template | null> {
  const deadline = Date.now() + LAYER_WAIT_MS;
  for (;;) {
    const row = await resolveTemplateRow(ctx.database.db, teamId, layer);
    if (!row || row.teamId !== teamId) return null;
    if ((await getTemplateCacheKey(ctx.database.db, row.id)) === key) return row;
    if (Date.now() > deadline) return null;
    await new Promise((r) => setTimeout(r, 250));
  }
}
