// The security suite's fixture: a real `wrenn up` (control plane + in-process host agent running
// namespace capsules) with two teams, each with its own API key and one `minimal` capsule that
// holds the static hostile probe (hostile-probe.c, compiled here with gcc -static). It runs
// commands as root or as the default user in either capsule and checks that a capsule is healthy
// (exec, a file round trip, and the kernel tables a neighbour needs). Used by the security tests
// and by bench/neighbour-latency.mjs; close() removes everything, also after a failure.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createApiKey } from '../../src/auth/api-keys.js';
import { createTeam } from '../../src/db/repositories/teams.js';
import { type Live, startLive } from '../../src/testing/live-up.js';

/** Test network slot of the security suite (see slotNetwork). */
export const SECURITY_SLOT = 8;
/** Where the probe lives inside each capsule. */
export const PROBE = '/tmp/hostile-probe';
/** Longest any single API call of the suite may take before the fixture gives up on it. */
const CALL_TIMEOUT_MS = 60_000;

export type Who = 'root' | 'user';

export interface ExecResult {
  stdout: string;
  stderr: string;
  exit_code: number;
  error?: string;
}

export interface Reply {
  status: number;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: JSON of many shapes, checked by the callers
  body: any;
}

export interface Team {
  name: 'a' | 'b';
  teamId: string;
  key: string;
  /** A random value in this team's capsule env, metadata and files: must never show up for the other team. */
  secret: string;
  capsule: { id: string; envdToken: string; address: string };
}

/** What hostile-probe `neighbour` saw: an inotify instance, a new pipe's size, 64 open files, a fork. */
export interface KernelCheck {
  inotify: boolean;
  inotify_errno: number;
  pipe_size: number;
  files: number;
  files_errno: number;
  fork: boolean;
  fork_errno: number;
}

export interface NeighbourHealth {
  execMs: number;
  fileMs: number;
  /** The kernel check as the default user and as root (per-user kernel state differs). */
  kernel: Record<Who, KernelCheck>;
}

const probeSource = fileURLToPath(new URL('../../../test/security/hostile-probe.c', import.meta.url));

/** Builds the static probe into `dir`; throws with gcc's message when this machine cannot. */
export function compileProbe(dir: string): string {
  const out = join(dir, 'hostile-probe');
  execFileSync('gcc', ['-static', '-O2', '-o', out, probeSource], { stdio: ['ignore', 'ignore', 'pipe'] });
  return out;
}

export class TwoTeams {
  readonly a: Team;
  readonly b: Team;
  private constructor(
    readonly live: Live,
    private readonly workDir: string,
    readonly probePath: string,
    a: Team,
    b: Team,
    private readonly memoryMb?: number,
  ) {
    this.a = a;
    this.b = b;
  }

  get url(): string {
    return this.live.url;
  }

  /** Starts the system, makes both teams and their capsules, and puts the probe in each. */
  static async start(o: { capsuleDiskMb?: number; memoryMb?: number } = {}): Promise<TwoTeams> {
    const workDir = mkdtempSync(join(tmpdir(), 'wrenn-security-'));
    let live: Live | undefined;
    try {
      const probePath = compileProbe(workDir);
      live = await startLive(
        SECURITY_SLOT,
        'security',
        o.capsuleDiskMb !== undefined ? { capsuleDiskMb: o.capsuleDiskMb } : {},
      );
      const db = live.up.cp.ctx.database.db;
      const makeTeam = async (name: 'a' | 'b'): Promise<Team> => {
        const team = await createTeam(db, { name: `security-${name}` });
        const { key } = await createApiKey(db, { teamId: team.id, name: `security-${name} key` });
        const secret = `secret-${name}-${randomBytes(12).toString('hex')}`;
        return { name, teamId: team.id, key, secret, capsule: { id: '', envdToken: '', address: '' } };
      };
      const a = await makeTeam('a');
      const b = await makeTeam('b');
      const t = new TwoTeams(live, workDir, probePath, a, b, o.memoryMb);
      await t.replaceCapsule(a);
      await t.replaceCapsule(b);
      return t;
    } catch (err) {
      await live?.close().catch(() => undefined);
      rmSync(workDir, { recursive: true, force: true });
      throw err;
    }
  }

  /**
   * Gives `team` a new `minimal` capsule (the old one, if any, is destroyed) with the team's
   * secret in its env, metadata and files, and the probe at PROBE.
   */
  async replaceCapsule(team: Team): Promise<void> {
    if (team.capsule.id) await this.call(team, 'DELETE', `/v1/capsules/${team.capsule.id}`);
    const r = await this.call(team, 'POST', '/v1/capsules', {
      template: 'minimal',
      timeout_sec: 3600,
      env: { TEAM_SECRET: team.secret },
      metadata: { secret: team.secret },
      ...(this.memoryMb ? { memory_mb: this.memoryMb } : {}),
    });
    assert.equal(r.status, 201, `team ${team.name}: create capsule: ${r.text}`);
    const id = String(r.body.id);
    team.capsule = {
      id,
      envdToken: String(r.body.envd_access_token),
      address: this.live.up.agent.manager.get(id).address,
    };
    await this.putFile(team, PROBE, readFileSync(this.probePath), 'root');
    await this.mustRun(
      team,
      'root',
      `chmod 755 ${PROBE} && echo ${team.secret} > /root/secret && echo ${team.secret} > /home/user/secret`,
    );
  }

  /** A call to the control plane's API with `team`'s key (or none). */
  call(
    team: Team | undefined,
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<Reply> {
    return api(this.url, team?.key, method, path, body, headers);
  }

  /** Runs a shell command line in `team`'s capsule as root or the default user. */
  async run(team: Team, who: Who, cmd: string, timeoutSec = 30): Promise<ExecResult> {
    const r = await this.call(team, 'POST', `/v1/capsules/${team.capsule.id}/exec`, {
      cmd,
      timeout_sec: timeoutSec,
      ...(who === 'root' ? { user: 'root' } : {}),
    });
    if (r.status !== 200) throw new Error(`exec in team ${team.name}'s capsule as ${who}: ${r.status} ${r.text}`);
    return r.body as ExecResult;
  }

  /** Like run, but the command must exit 0; returns its stdout. */
  async mustRun(team: Team, who: Who, cmd: string, timeoutSec = 30): Promise<string> {
    const r = await this.run(team, who, cmd, timeoutSec);
    assert.equal(
      r.exit_code,
      0,
      `\`${cmd}\` as ${who} in team ${team.name}'s capsule: exit ${r.exit_code} ${r.error ?? ''} ${r.stderr}`,
    );
    return r.stdout;
  }

  /** Runs the probe and parses the JSON line it prints. */
  async probe<T = Record<string, unknown>>(team: Team, who: Who, args: string): Promise<T> {
    const out = await this.mustRun(team, who, `${PROBE} ${args}`);
    const line = out.trim().split('\n').pop() ?? '';
    try {
      return JSON.parse(line) as T;
    } catch {
      throw new Error(`hostile-probe ${args}: no JSON in ${JSON.stringify(out)}`);
    }
  }

  async putFile(team: Team, path: string, data: Buffer, who?: Who): Promise<void> {
    const q = new URLSearchParams({ path, ...(who === 'root' ? { user: 'root' } : {}) });
    const r = await this.call(team, 'PUT', `/v1/capsules/${team.capsule.id}/files?${q}`, data, {
      'content-type': 'application/octet-stream',
    });
    if (r.status !== 200) throw new Error(`upload ${path} to team ${team.name}'s capsule: ${r.status} ${r.text}`);
  }

  async getFile(team: Team, path: string): Promise<Buffer> {
    const res = await fetch(`${this.url}/v1/capsules/${team.capsule.id}/files?${new URLSearchParams({ path })}`, {
      headers: { 'x-api-key': team.key },
      signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
    });
    const body = Buffer.from(await res.arrayBuffer());
    if (res.status !== 200)
      throw new Error(`download ${path} from team ${team.name}'s capsule: ${res.status} ${body.toString()}`);
    return body;
  }

  /** Exec `true` latency in ms (default user), failing unless it exits 0. */
  async execTrueMs(team: Team): Promise<number> {
    const t0 = performance.now();
    const r = await this.run(team, 'user', 'true');
    const ms = performance.now() - t0;
    assert.equal(
      r.exit_code,
      0,
      `\`true\` in team ${team.name}'s capsule: ${r.exit_code} ${r.error ?? ''} ${r.stderr}`,
    );
    return ms;
  }

  /**
   * Is `team`'s capsule healthy? exec `true`, a 4 KiB file up and down again, and the probe's
   * `neighbour` check (as the default user and as root). Throws with what failed.
   */
  async neighbourHealth(team: Team): Promise<NeighbourHealth> {
    const execMs = await this.execTrueMs(team);
    const data = randomBytes(4096);
    const path = `/home/user/roundtrip-${randomBytes(4).toString('hex')}`;
    const t0 = performance.now();
    await this.putFile(team, path, data);
    const back = await this.getFile(team, path);
    const fileMs = performance.now() - t0;
    assert.ok(back.equals(data), `file round trip in team ${team.name}'s capsule returned other bytes`);
    await this.mustRun(team, 'user', `rm -f ${path}`);
    const kernel = {
      user: await this.probe<KernelCheck>(team, 'user', 'neighbour'),
      root: await this.probe<KernelCheck>(team, 'root', 'neighbour'),
    };
    return { execMs, fileMs, kernel };
  }

  /** Whether `team`'s capsule runs `true` as root right now. */
  async answers(team: Team): Promise<boolean> {
    const r = await this.run(team, 'root', 'true', 10).catch(() => undefined);
    return r?.exit_code === 0;
  }

  /** The capsule's state as its own team sees it. */
  async state(team: Team): Promise<{ state: string; error?: string }> {
    const r = await this.call(team, 'GET', `/v1/capsules/${team.capsule.id}`);
    assert.equal(r.status, 200, r.text);
    return { state: String(r.body.state), ...(r.body.error ? { error: String(r.body.error) } : {}) };
  }

  async close(): Promise<void> {
    try {
      await this.live.close();
    } finally {
      rmSync(this.workDir, { recursive: true, force: true });
    }
  }
}

async function api(
  base: string,
  key: string | undefined,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Reply> {
  const h: Record<string, string> = { ...headers };
  if (key) h['x-api-key'] = key;
  let payload: string | Buffer | undefined;
  if (Buffer.isBuffer(body)) payload = body;
  else if (body !== undefined) {
    payload = JSON.stringify(body);
    h['content-type'] ??= 'application/json';
  }
  const res = await fetch(base + path, {
    method,
    headers: h,
    signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
    ...(payload !== undefined ? { body: payload } : {}),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // not JSON
  }
  return { status: res.status, text, body: parsed };
}
