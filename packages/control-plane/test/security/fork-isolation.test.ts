// Hostile forks (namespace runtime): team A forks its capsule twice, then root and the default user
// in a fork go after the source and the sibling. A fork must not see or signal the source's
// processes (a process the source started before the fork, found on the host by its unique
// command line, survives root's kill attempts from the fork), must not connect to the source's or
// the sibling's envd, and must stay inside its own disk quota (the source's files it sees do not
// count, its own writes end in ENOSPC at the quota); the source, the sibling and team B's capsule
// keep working through all of it.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { ENVD_PORT } from '@wrenn/protocol';
import { type Team, TwoTeams, type Who } from './two-teams.js';

/** Each capsule's disk: small, so a fork fills its own quickly. */
const DISK_MB = 128;
/** The source's process, found on the host by this command line. */
const MARKER_SECS = 6123;

/** Counts, inside a capsule, processes whose command line is exactly the marker's. */
const COUNT_MARKERS = `for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done | grep -cx 'sleep ${MARKER_SECS} ' || true`;

/** Host pids of `sleep <MARKER_SECS>` processes. */
function markerPids(): number[] {
  const want = `sleep\0${MARKER_SECS}\0`;
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8') === want) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

describe('security: a fork cannot reach its source or its sibling (namespace runtime)', () => {
  let t: TwoTeams;
  let forks: [Team, Team];
  let sourcePid = 0;

  before(async () => {
    t = await TwoTeams.start({ capsuleDiskMb: DISK_MB });
    const a = t.a;
    await t.mustRun(
      a,
      'user',
      `dd if=/dev/urandom of=/home/user/big bs=1M count=48 2>/dev/null && md5sum /home/user/big`,
    );
    await t.mustRun(a, 'root', `sleep ${MARKER_SECS} </dev/null >/dev/null 2>&1 &`);
    const pids = markerPids();
    assert.equal(pids.length, 1, `one marker process on the host, found ${pids.join(', ')}`);
    sourcePid = pids[0] as number;
    const r = await t.call(a, 'POST', `/v1/capsules/${a.capsule.id}/fork`, { count: 2, timeout_sec: 900 });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.processes_restarted, true);
    forks = (r.body.forks as { capsule?: { id: string; envd_access_token: string } }[]).map((f, i) => {
      assert.ok(f.capsule, `fork ${i}: ${JSON.stringify(f)}`);
      const id = f.capsule.id;
      return {
        ...a,
        capsule: { id, envdToken: f.capsule.envd_access_token, address: t.live.up.agent.manager.get(id).address },
      };
    }) as [Team, Team];
    assert.deepEqual(markerPids(), [sourcePid], "the forks did not start the source's process again");
  });
  after(async () => {
    await t?.close();
  });

  for (const who of ['root', 'user'] as Who[]) {
    it(`as ${who} in a fork: the source's processes are invisible and cannot be signalled`, async () => {
      const [f] = forks;
      assert.equal((await t.mustRun(f, who, COUNT_MARKERS)).trim(), '0', 'the fork lists no process of the source');
      // Signals by name, by the source's host pid and to every process the fork may signal.
      await t.run(f, who, `killall -9 sleep; pkill -9 sleep; kill -9 ${sourcePid}; true`);
      await t.run(f, who, 'kill -9 -1', 10).catch(() => undefined);
      assert.deepEqual(markerPids(), [sourcePid], "the source's process survived every signal from the fork");
      assert.equal((await t.mustRun(t.a, 'root', COUNT_MARKERS)).trim(), '1', 'the source still sees its process');
      // kill -1 as root ends the fork's own processes (its envd included) or is refused; either way
      // the source and sibling are untouched. A fork it killed is replaced for the next checks.
      if (!(await t.answers(f))) {
        const r = await t.call(t.a, 'POST', `/v1/capsules/${t.a.capsule.id}/fork`, { timeout_sec: 900 });
        assert.equal(r.status, 201, r.text);
        const id = String(r.body.forks[0].capsule.id);
        forks[0] = {
          ...t.a,
          capsule: {
            id,
            envdToken: String(r.body.forks[0].capsule.envd_access_token),
            address: t.live.up.agent.manager.get(id).address,
          },
        };
      }
    });

    it(`as ${who} in a fork: the source's and the sibling's envd are unreachable`, async () => {
      const [f, sibling] = forks;
      const self = await t.probe<{ result: string }>(f, who, `connect 127.0.0.1 ${ENVD_PORT} 2000`);
      assert.equal(self.result, 'open', "the probe reaches the fork's own envd (else the checks prove nothing)");
      for (const [what, ip] of [
        ['the source', t.a.capsule.address],
        ['the sibling fork', sibling.capsule.address],
      ] as const) {
        const r = await t.probe<{ result: string; error: string }>(f, who, `connect ${ip} ${ENVD_PORT} 1500`);
        assert.notEqual(r.result, 'open', `${what}'s envd (${ip}) is reachable from a fork as ${who}`);
      }
    });
  }

  it("a fork's writes end at its own disk quota; the source's files it sees do not count", async () => {
    const [f, sibling] = forks;
    // 48 MiB of the source's are visible in the fork and unchanged.
    const sum = (team: Team) => t.mustRun(team, 'user', 'md5sum < /home/user/big');
    assert.equal(await sum(f), await sum(t.a));
    const fill = await t.run(f, 'root', 'dd if=/dev/zero of=/home/user/fill bs=1M count=1024 2>&1; sync', 120);
    assert.match(fill.stdout + fill.stderr, /No space left on device/, `dd in the fork: ${fill.stdout} ${fill.stderr}`);
    const mb = Number((await t.mustRun(f, 'root', 'du -sm /home/user/fill | cut -f1')).trim());
    assert.ok(mb > DISK_MB / 2, `the fork wrote ${mb} MiB of its own: more than half its ${DISK_MB} MiB`);
    assert.ok(mb <= DISK_MB, `the fork wrote ${mb} MiB, over its ${DISK_MB} MiB quota`);
    // The source and the sibling still write, and see nothing of the fork's file.
    for (const team of [t.a, sibling]) {
      await t.mustRun(
        team,
        'user',
        'dd if=/dev/zero of=/home/user/after bs=1M count=8 2>/dev/null && rm /home/user/after',
      );
      assert.equal((await t.run(team, 'user', 'test -e /home/user/fill')).exit_code, 1);
    }
    await t.mustRun(f, 'root', 'rm -f /home/user/fill');
  });

  it("team B's capsule, the source and the sibling kept working", async () => {
    for (const team of [t.b, t.a, forks[1]]) await t.neighbourHealth(team);
    assert.deepEqual(markerPids(), [sourcePid]);
  });
});
