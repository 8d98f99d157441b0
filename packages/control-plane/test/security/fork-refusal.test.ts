// A fork bomb is refused early: the capsule's RLIMIT_NPROC (set by wrenn-nsinit before it makes
// the capsule's user namespace, equal to pids.max) stops every fork beyond the cap before the
// kernel copies the address space, so pids.max never has to (its `max` event counter stays 0,
// the costly refusal that frees page tables by RCU and flushes TLBs on every CPU). Root inside
// cannot raise the limit, and team B keeps answering while A's bomb runs.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { agentCgroupParent } from '../../src/testing/live-up.js';
import { PROBE, SECURITY_SLOT, TwoTeams, type Who } from './two-teams.js';

const BOMB_SECS = 4;
const PIDS_MAX = 512; // the namespace runtime's default pids.max

const pidsFile = (id: string, f: string) =>
  readFileSync(`/sys/fs/cgroup/pids/${agentCgroupParent(SECURITY_SLOT)}/${id}/${f}`, 'utf8').trim();
const pidsMaxEvents = (id: string) => Number(/max (\d+)/.exec(pidsFile(id, 'pids.events'))?.[1] ?? Number.NaN);

describe('security: fork bombs stop at RLIMIT_NPROC, before pids.max (namespace runtime)', () => {
  let t: TwoTeams;
  before(async () => {
    t = await TwoTeams.start();
  });
  after(async () => {
    await t?.close();
  });

  it('root inside sees the cap and cannot raise it', async () => {
    assert.equal((await t.mustRun(t.a, 'root', 'ulimit -H -u')).trim(), String(PIDS_MAX));
    const r = await t.run(t.a, 'root', `ulimit -H -u ${PIDS_MAX * 4}`);
    assert.notEqual(r.exit_code, 0, `root raised its RLIMIT_NPROC: ${r.stdout}${r.stderr}`);
  });

  for (const who of ['root', 'user'] as Who[]) {
    it(`a fork bomb as ${who} fills the cap, is refused by RLIMIT_NPROC only, and B keeps answering`, async (tc) => {
      if (!(await t.answers(t.a))) await t.replaceCapsule(t.a);
      const id = t.a.capsule.id;
      const eventsBefore = pidsMaxEvents(id);
      await t.mustRun(t.a, who, `${PROBE} forkbomb ${BOMB_SECS} > /dev/null 2>&1 < /dev/null &`);
      let peak = 0;
      let execs = 0;
      const t0 = Date.now();
      try {
        while (Date.now() - t0 < BOMB_SECS * 1000) {
          peak = Math.max(peak, Number(pidsFile(id, 'pids.current')));
          await t.execTrueMs(t.b);
          execs++;
        }
      } finally {
        // The bomb ends itself at its deadline; wait for that (the capsule is at its cap until then).
        for (let i = 0; i < 100 && Number(pidsFile(id, 'pids.current')) > 50; i++)
          await new Promise((r) => setTimeout(r, 100));
      }
      const events = pidsMaxEvents(id) - eventsBefore;
      tc.diagnostic(
        `peak ${peak} tasks in A (pids.max ${PIDS_MAX}); pids.max refused ${events} forks; B answered ${execs} execs`,
      );
      assert.ok(peak >= PIDS_MAX * 0.9, `the bomb reached only ${peak} tasks: it did not meet the cap`);
      assert.equal(events, 0, `pids.max refused ${events} forks: RLIMIT_NPROC did not stop the bomb first`);
      assert.ok(execs > 0, 'team B answered exec while the bomb ran');
      assert.ok(await t.answers(t.a), "team A's capsule answers again after the bomb");
    });
  }
});
