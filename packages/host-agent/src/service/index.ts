// hostagent.v1.HostAgentService: the Connect service the control plane calls on each host.
import { cpus, hostname, totalmem } from 'node:os';
import { create } from '@bufbuild/protobuf';
import type { ServiceImpl } from '@connectrpc/connect';
import {
  DomainError,
  egressPolicyProblem,
  forkRequestProblem,
  InternalError,
  InvalidArgumentError,
} from '@wrenn/protocol';
import {
  type Capsule,
  CapsuleSchema,
  type HostAgentService,
  PauseMode,
  CapsuleState as PbState,
  PtyOutputSchema,
  type Template,
  TemplateSchema,
  TimeoutAction,
} from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import type { CreateCapsuleInput, SandboxManager } from '../manager/manager.js';
import type { CapsuleState } from '../manager/state-machine.js';
import type { CapsuleRecord, TemplateInfo, TimeoutAction as TimeoutActionName } from '../manager/types.js';
import { checkCreateRequest, checkTimeout } from '../manager/validate.js';
import type { RuntimeName } from '../runtimes/runtime.js';
import { convert, execCollected, execEvents, signalFor, toEnvdSelector, toPtyOutput, userHeaders } from './commands.js';
import { withErrorMapping } from './errors.js';
import { readFileChunks, toFileEntry, writeFileFromChunks } from './files.js';
import { ensureImageTemplateEvents } from './image-templates.js';
import { policyFromPb, policyToPb } from './network-policy-pb.js';
import { createVolume, deleteVolume, volumeContentRpc } from './volumes.js';
import { watchCapsules } from './watch.js';

const STATE: Record<CapsuleState, PbState> = {
  starting: PbState.STARTING,
  running: PbState.RUNNING,
  paused: PbState.PAUSED,
  hibernated: PbState.HIBERNATED,
  stopped: PbState.STOPPED,
  error: PbState.ERROR,
};

const TIMEOUT_ACTION: Record<TimeoutActionName, TimeoutAction> = {
  destroy: TimeoutAction.DESTROY,
  pause: TimeoutAction.PAUSE,
  hibernate: TimeoutAction.HIBERNATE,
};
const timeoutActionToPb = (a: TimeoutActionName): TimeoutAction => TIMEOUT_ACTION[a];
/** Unspecified (or unknown) is destroy. */
const timeoutActionFromPb = (a: TimeoutAction): TimeoutActionName =>
  a === TimeoutAction.PAUSE ? 'pause' : a === TimeoutAction.HIBERNATE ? 'hibernate' : 'destroy';

/** `withToken`: include the envd access token (only for whoever created the capsule or asked for it by id). */
export function toPbCapsule(rec: CapsuleRecord, envdVersion: string, withToken = false): Capsule {
  return create(CapsuleSchema, {
    id: rec.id,
    template: rec.template,
    state: STATE[rec.state],
    runtime: rec.runtime,
    vcpus: rec.vcpus,
    memoryMb: rec.memoryMb,
    createdAt: BigInt(rec.createdAt),
    expiresAt: BigInt(rec.expiresAt),
    timeoutAction: timeoutActionToPb(rec.timeoutAction),
    metadata: rec.metadata,
    address: rec.address,
    envdVersion,
    internet: rec.internet,
    ...(rec.networkPolicy ? { network: policyToPb(rec.networkPolicy) } : {}),
    pauseKeeps: rec.pauseKeeps ?? '',
    error: rec.error ?? '',
    envdAccessToken: withToken ? rec.envdAccessToken : '',
    fromWarmPool: rec.fromWarmPool === true,
  });
}

/** The most templates one SetWarmPool may name. */
const MAX_WARM_POOL_TEMPLATES = 64;

export function toPbTemplate(t: TemplateInfo): Template {
  return create(TemplateSchema, {
    name: t.name,
    kind: t.kind,
    runtimes: t.runtimes,
    sizeBytes: BigInt(t.sizeBytes),
    createdAt: BigInt(t.createdAt),
    parent: t.parent ?? '',
    vcpus: t.vcpus ?? 0,
    memoryMb: t.memoryMb ?? 0,
  });
}

export interface HostAgentServiceOptions {
  manager: SandboxManager;
  hostId: string;
  version: string;
  envdVersion: string;
  runtimes: string[];
  defaultRuntime: string;
  /** Called by Terminate after every capsule is gone. */
  onTerminate?: () => void;
}

export function hostAgentService(o: HostAgentServiceOptions): ServiceImpl<typeof HostAgentService> {
  const m = o.manager;
  const pb = (rec: CapsuleRecord, withToken = false) => toPbCapsule(rec, o.envdVersion, withToken);
  // Read once: GetHostInfo answers every 2 s (the control plane's heartbeat), os.cpus() reads
  // /proc/cpuinfo and /proc/stat, and totalmem() /proc/meminfo, whose every read walks all the
  // host's block devices (a loop device per capsule disk: it grows with the capsules). Neither
  // figure changes while the agent runs.
  const cpuCount = cpus().length;
  const memoryMb = BigInt(Math.floor(totalmem() / (1 << 20)));
  const impl: ServiceImpl<typeof HostAgentService> = {
    async getHostInfo() {
      const caps = m.list().filter((c) => c.state === 'running' || c.state === 'starting' || c.state === 'paused');
      const capacity = m.capacity();
      return {
        hostId: o.hostId,
        hostname: hostname(),
        runtimes: o.runtimes,
        defaultRuntime: o.defaultRuntime,
        cpuCount,
        memoryMb,
        capsulesRunning: caps.length,
        vcpusAllocated: caps.reduce((n, c) => n + c.vcpus, 0),
        memoryMbAllocated: BigInt(caps.reduce((n, c) => n + c.memoryMb, 0)),
        version: o.version,
        capsulesHeld: capacity.held,
        capsuleRoom: Math.min(capacity.room, 0xffff_ffff),
        full: capacity.full?.full ?? '',
        warmPools: m.warmPools(),
      };
    },
    async setWarmPool(req) {
      const names = Object.keys(req.sizes);
      if (names.length > MAX_WARM_POOL_TEMPLATES)
        throw new InvalidArgumentError(
          `a warm pool may name at most ${MAX_WARM_POOL_TEMPLATES} templates, got ${names.length}`,
        );
      await m.setWarmPool({ ...req.sizes });
      return { warmPools: m.warmPools() };
    },
    async createCapsule(req) {
      const input: CreateCapsuleInput = {
        id: req.id,
        template: req.template,
        vcpus: req.vcpus || undefined,
        memoryMb: req.memoryMb || undefined,
        timeoutSec: req.timeoutSec,
        timeoutAction: timeoutActionFromPb(req.timeoutAction),
        envs: req.envs,
        metadata: req.metadata,
        internet: req.internet ?? true,
        ...(req.network ? { network: policyFromPb(req.network) } : {}),
        envdAccessToken: req.envdAccessToken,
        runtime: (req.runtime || undefined) as RuntimeName | undefined,
        defaultUser: req.defaultUser || undefined,
        defaultWorkdir: req.defaultWorkdir || undefined,
        ...(req.volumeMounts.length
          ? { volumes: req.volumeMounts.map((v) => ({ volumeId: v.volumeId, path: v.path })) }
          : {}),
      };
      checkCreateRequest(input);
      return { capsule: pb(await m.create(input), true) };
    },
    async updateCapsuleNetwork(req) {
      const problem = egressPolicyProblem(policyFromPb(req.network));
      if (problem) throw new InvalidArgumentError(problem);
      return { capsule: pb(await m.updateNetwork(req.id, policyFromPb(req.network) ?? {})) };
    },
    async forkCapsule(req) {
      const problem = forkRequestProblem({ count: req.forks.length });
      if (problem) throw new InvalidArgumentError(problem);
      for (const t of req.forks) checkTimeout(t.timeoutSec);
      const result = await m.fork(
        req.sourceId,
        req.forks.map((t) => ({
          id: t.id,
          timeoutSec: t.timeoutSec,
          timeoutAction: timeoutActionFromPb(t.timeoutAction),
          envdAccessToken: t.envdAccessToken,
        })),
      );
      return {
        processesRestarted: result.processesRestarted,
        forks: result.forks.map((f) =>
          'capsule' in f
            ? { capsule: pb(f.capsule, true) }
            : {
                errorKind: f.error instanceof DomainError ? f.error.kind : 'internal',
                error: f.error instanceof Error ? f.error.message : String(f.error),
              },
        ),
      };
    },
    async destroyCapsule(req) {
      await m.destroy(req.id);
      return {};
    },
    async pauseCapsule(req) {
      const mode =
        req.mode === PauseMode.HIBERNATE ? 'hibernate' : req.mode === PauseMode.FREEZE ? 'freeze' : undefined;
      const rec = await m.pause(req.id, mode);
      return { capsule: pb(rec) };
    },
    async resumeCapsule(req) {
      checkTimeout(req.timeoutSec);
      return { capsule: pb(await m.resume(req.id, req.timeoutSec || undefined)) };
    },
    async getCapsule(req) {
      return { capsule: pb(m.get(req.id), req.withEnvdAccessToken) };
    },
    async *watchCapsules(_req, ctx) {
      yield* watchCapsules(m, ctx.signal);
    },
    async listCapsules(req) {
      const revision = BigInt(m.revision());
      if (req.unlessRevision !== 0n && req.unlessRevision === revision)
        return { capsules: [], revision, unchanged: true };
      if (req.summary) {
        return {
          revision,
          capsules: m.list().map((rec) =>
            create(CapsuleSchema, {
              id: rec.id,
              state: STATE[rec.state],
              createdAt: BigInt(rec.createdAt),
              expiresAt: BigInt(rec.expiresAt),
              error: rec.error ?? '',
            }),
          ),
        };
      }
      return { revision, capsules: m.list().map((rec) => pb(rec)) };
    },
    async pingCapsule(req) {
      checkTimeout(req.timeoutSec);
      return { capsule: pb(await m.ping(req.id, req.timeoutSec)) };
    },
    async getCapsuleMetrics(req) {
      const rec = m.get(req.id);
      const s = await m.stats(req.id);
      return {
        cpuUsedPct: m.metricsHistory.lastCpuPct(req.id),
        cpuCount: rec.vcpus,
        memUsedBytes: BigInt(s.memoryBytes),
        memTotalBytes: BigInt(s.memoryLimitBytes),
        diskUsedBytes: BigInt(s.diskUsedBytes),
        diskTotalBytes: 0n,
        pids: s.pids,
        timestamp: BigInt(Date.now()),
      };
    },
    async getCapsuleMetricsHistory(req) {
      m.get(req.id); // NotFound for an unknown capsule
      if (req.endMs < req.startMs) throw new InvalidArgumentError('end_ms must not be before start_ms');
      return {
        samples: m.metricsHistory.range(req.id, Number(req.startMs), Number(req.endMs)).map((x) => ({
          cpuUsedPct: x.cpuUsedPct,
          cpuCount: x.cpuCount,
          memUsedBytes: BigInt(x.memUsedBytes),
          memTotalBytes: BigInt(x.memTotalBytes),
          diskUsedBytes: BigInt(x.diskUsedBytes),
          diskTotalBytes: 0n,
          pids: x.pids,
          timestamp: BigInt(x.timestampMs),
        })),
      };
    },
    async exec(req, ctx) {
      return execCollected(m.envdFor(req.capsuleId), req, ctx.signal);
    },
    async *execStream(req, ctx) {
      yield* execEvents(m.envdFor(req.capsuleId), req, ctx.signal);
    },
    async startProcess(req) {
      const exec = req.exec;
      if (!exec) throw new InvalidArgumentError('exec is required');
      const envd = m.envdFor(exec.capsuleId);
      // The process outlives this call: read until the start event, then let the stream go.
      const abort = new AbortController();
      const events = execEvents(envd, exec, abort.signal, { stdin: true });
      const first = await events.next();
      if (first.done || first.value.event.case !== 'startPid') throw new InternalError('process did not start');
      const pid = first.value.event.value;
      void (async () => {
        try {
          for await (const _ of events) {
            // drain so envd is not blocked on a full stream
          }
        } catch {
          // envd ended the stream; the process itself is unaffected
        }
      })();
      return { pid };
    },
    async listProcesses(req) {
      const res = await m.envdFor(req.capsuleId).process.list({});
      return {
        processes: res.processes.map((p) => ({
          pid: p.pid,
          tag: p.tag ?? '',
          cmd: p.config?.cmd ?? '',
          args: p.config?.args ?? [],
          cwd: p.config?.cwd ?? '',
        })),
      };
    },
    async killProcess(req) {
      await m
        .envdFor(req.capsuleId)
        .process.sendSignal({ process: { selector: toEnvdSelector(req.process) }, signal: signalFor(req.signal) });
      return {};
    },
    async *connectProcess(req, ctx) {
      const envd = m.envdFor(req.capsuleId);
      const stream = envd.process.connect(
        { process: { selector: toEnvdSelector(req.process) } },
        { signal: ctx.signal },
      );
      for await (const res of stream) {
        const ev = convert(res.event);
        if (ev) yield ev;
      }
    },
    async sendProcessInput(req) {
      const envd = m.envdFor(req.capsuleId);
      const process = { selector: toEnvdSelector(req.process) };
      if (req.data.length > 0)
        await envd.process.sendInput({ process, input: { input: { case: 'stdin', value: req.data } } });
      if (req.closeStdin) await envd.process.closeStdin({ process });
      return {};
    },
    async *ptyAttach(req, ctx) {
      const envd = m.envdFor(req.capsuleId);
      const tag = req.tag || `pty-${Date.now().toString(36)}`;
      const running = (await envd.process.list({})).processes.find((p) => p.tag === tag);
      if (running) {
        if (req.cols && req.rows) {
          await envd.process.update({
            process: { selector: { case: 'tag', value: tag } },
            pty: { size: { cols: req.cols, rows: req.rows } },
          });
        }
        yield create(PtyOutputSchema, { event: { case: 'pid', value: running.pid } });
        for await (const res of envd.process.connect(
          { process: { selector: { case: 'tag', value: tag } } },
          { signal: ctx.signal },
        )) {
          const ev = convert(res.event);
          const out = ev && toPtyOutput(ev);
          if (out && out.event.case !== 'pid') yield out;
        }
        return;
      }
      const cmd = req.cmd || '/bin/sh';
      const args = req.cmd ? req.args : ['-l'];
      const events = execEvents(
        envd,
        {
          capsuleId: req.capsuleId,
          cmd,
          args,
          envs: { TERM: 'xterm-256color', ...req.envs },
          cwd: req.cwd,
          user: req.user,
          tag,
          stdin: new Uint8Array(),
          timeoutSec: 0,
        } as never,
        ctx.signal,
        { stdin: true, pty: { cols: req.cols || 80, rows: req.rows || 24 } },
      );
      for await (const ev of events) {
        const out = toPtyOutput(ev);
        if (out) yield out;
      }
    },
    async ptyInput(req) {
      await m.envdFor(req.capsuleId).process.sendInput({
        process: { selector: { case: 'tag', value: req.tag } },
        input: { input: { case: 'pty', value: req.data } },
      });
      return {};
    },
    async ptyResize(req) {
      await m.envdFor(req.capsuleId).process.update({
        process: { selector: { case: 'tag', value: req.tag } },
        pty: { size: { cols: req.cols, rows: req.rows } },
      });
      return {};
    },
    async ptyKill(req) {
      await m
        .envdFor(req.capsuleId)
        .process.sendSignal({ process: { selector: { case: 'tag', value: req.tag } }, signal: signalFor(9) });
      return {};
    },
    async *readFile(req, ctx) {
      for await (const data of readFileChunks(m.envdFor(req.capsuleId), req.path, req.user, ctx.signal)) yield { data };
    },
    async writeFile(stream) {
      const it = stream[Symbol.asyncIterator]();
      const first = await it.next();
      if (first.done || first.value.part.case !== 'header')
        throw new InvalidArgumentError('the first message must be the header');
      const h = first.value.part.value;
      const envd = m.envdFor(h.capsuleId);
      async function* chunks() {
        for (;;) {
          const n = await it.next();
          if (n.done) return;
          if (n.value.part.case !== 'data') throw new InvalidArgumentError('only data messages may follow the header');
          yield n.value.part.value;
        }
      }
      const written = await writeFileFromChunks(envd, h.path, h.user, chunks());
      const st = await envd.filesystem.stat({ path: h.path }, { headers: userHeaders(h.user) });
      return { bytesWritten: BigInt(written), entry: toFileEntry(st.entry) };
    },
    async listDir(req) {
      const res = await m
        .envdFor(req.capsuleId)
        .filesystem.listDir({ path: req.path, depth: req.depth || 1 }, { headers: userHeaders(req.user) });
      return { entries: res.entries.map(toFileEntry) };
    },
    async makeDir(req) {
      const res = await m
        .envdFor(req.capsuleId)
        .filesystem.makeDir({ path: req.path }, { headers: userHeaders(req.user) });
      return { entry: toFileEntry(res.entry) };
    },
    async removePath(req) {
      await m.envdFor(req.capsuleId).filesystem.remove({ path: req.path }, { headers: userHeaders(req.user) });
      return {};
    },
    async createSnapshot(req) {
      return { template: toPbTemplate(await m.snapshot(req.capsuleId, req.name)) };
    },
    async deleteSnapshot(req) {
      await m.deleteTemplate(req.name);
      return {};
    },
    async *ensureImageTemplate(req) {
      yield* ensureImageTemplateEvents(m.templates(), req);
    },
    async pruneImages(req) {
      const r = await m.pruneImages(req.olderThanSec === undefined ? undefined : Number(req.olderThanSec) * 1000);
      return {
        removedTemplates: r.removedTemplates,
        removedLayers: r.removedLayers,
        freedBytes: BigInt(r.freedBytes),
        keptLayers: r.keptLayers,
        cacheBytes: BigInt(r.cacheBytes),
      };
    },
    async listTemplates() {
      return { templates: (await m.templates().list()).map(toPbTemplate) };
    },
    createVolume: (req) => createVolume(m, req),
    deleteVolume: (req) => deleteVolume(m, req),
    volumeContent: (req) => volumeContentRpc(m, req),
    async terminate() {
      await m.destroyAll();
      setImmediate(() => o.onTerminate?.());
      return {};
    },
  };
  return withErrorMapping(impl);
}
