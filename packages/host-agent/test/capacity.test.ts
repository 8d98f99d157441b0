// Capacity arithmetic (capacity/capacity.ts) over readings of this machine's real /proc files:
// the parsers read what the kernel writes, and each limit refuses one more capsule exactly when
// its own table has no room, naming the table and its numbers.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { assessCapacity, type CapacityConfig, capacityConfig, envCount } from '../src/capacity/capacity.js';
import {
  type HostReadings,
  parseFdSize,
  parseFileNr,
  parseLoadavgTasks,
  parseMeminfo,
  parseNofileSoft,
  readHostReadings,
} from '../src/capacity/host-readings.js';

const real = readHostReadings({ exactFds: true });
const config = (over: Partial<CapacityConfig> = {}): CapacityConfig => ({ ...capacityConfig({}, {}, {}), ...over });

test('the parsers read the real /proc files of this machine', () => {
  const mem = parseMeminfo(readFileSync('/proc/meminfo', 'utf8'));
  assert.ok(mem.memTotalMb > 0 && mem.memAvailableMb > 0 && mem.memAvailableMb <= mem.memTotalMb, JSON.stringify(mem));
  // At least the threads of this process exist (node's main thread plus its pool and V8 workers).
  const tasks = parseLoadavgTasks(readFileSync('/proc/loadavg', 'utf8'));
  assert.ok(tasks >= readdirSync('/proc/self/task').length, `tasks ${tasks}`);
  const files = parseFileNr(readFileSync('/proc/sys/fs/file-nr', 'utf8'));
  assert.ok(files.hostFiles > 0 && files.hostFileMax >= files.hostFiles, JSON.stringify(files));
  const nofile = parseNofileSoft(readFileSync('/proc/self/limits', 'utf8'));
  assert.ok(nofile > readdirSync('/proc/self/fd').length, `RLIMIT_NOFILE ${nofile}`);
  const num = (f: string) => Number(readFileSync(f, 'utf8').trim());
  assert.equal(real.taskLimit, Math.min(num('/proc/sys/kernel/pid_max'), num('/proc/sys/kernel/threads-max')));
  assert.ok(real.agentFds > 3 && real.agentFdLimit === nofile, JSON.stringify(real));
  // The fd table's size bounds the open fds from above; it stands in for them far from the limit.
  const fdSize = parseFdSize(readFileSync('/proc/self/status', 'utf8'));
  assert.ok(fdSize >= readdirSync('/proc/self/fd').length, `FDSize ${fdSize}`);
  if (fdSize < nofile) assert.equal(readHostReadings({ fdMargin: 0 }).agentFds, fdSize);
  // Near the limit (a margin that leaves no room) the fds are counted.
  assert.equal(readHostReadings({ fdMargin: nofile }).agentFds, readdirSync('/proc/self/fd').length);
});

test('the parsers refuse what is not the kernel format, naming the file', () => {
  assert.throws(() => parseMeminfo('MemTotal: 1 kB\n'), /MemAvailable/);
  assert.throws(() => parseLoadavgTasks('garbage'), /\/proc\/loadavg/);
  assert.throws(() => parseFileNr('1 2'), /file-nr/);
  assert.throws(() => parseNofileSoft('Max processes 1 1 processes'), /Max open files/);
  assert.equal(
    parseNofileSoft('Max open files            unlimited            unlimited            files\n'),
    Infinity,
  );
  // fs.file-max is 2^63-1 on many hosts: no limit, not a rounding accident.
  assert.equal(parseFileNr('100 0 9223372036854775807').hostFileMax, Number.MAX_SAFE_INTEGER);
});

test('this machine as it is has room, and every limit reports its use', () => {
  const report = assessCapacity(real, config({ memoryReserveMb: 0 }), { capsules: 0 });
  assert.equal(report.full, undefined, JSON.stringify(report.full));
  assert.ok(report.room >= 1);
  const resources = report.limits.map((l) => l.resource).sort();
  assert.deepEqual(resources, ['agent_fds', 'host_files', 'memory', 'tasks']);
  const mem = report.limits.find((l) => l.resource === 'memory')!;
  assert.equal(mem.used, real.memTotalMb - real.memAvailableMb);
});

test('the configured maximum counts every capsule held and refuses the next one', () => {
  const c = config({ maxCapsules: 3, memoryReserveMb: 0 });
  assert.equal(assessCapacity(real, c, { capsules: 2 }).room, 1);
  const full = assessCapacity(real, c, { capsules: 3 });
  assert.equal(full.room, 0);
  assert.equal(full.full?.resource, 'capsules');
  assert.match(full.full?.full ?? '', /holds 3 capsules.*WRENN_MAX_CAPSULES=3/);
});

test('memory: refused when what is available, less the reserve, cannot start one more capsule', () => {
  const p = config().perCapsule;
  // The reserve set so that exactly one start fits, then one MiB more than that.
  const fits = config({ memoryReserveMb: real.memAvailableMb - p.startMb });
  const one = assessCapacity(real, fits, { capsules: 0 }).limits.find((l) => l.resource === 'memory')!;
  assert.equal(one.room, 1);
  const over = assessCapacity(real, config({ memoryReserveMb: real.memAvailableMb - p.startMb + 1 }), { capsules: 0 });
  assert.equal(over.full?.resource, 'memory');
  assert.match(over.full?.full ?? '', new RegExp(`${real.memAvailableMb} MiB available.*WRENN_MEMORY_RESERVE_MB`));
  // Room beyond the first start is counted at the idle size of a capsule.
  const roomy = assessCapacity(real, config({ memoryReserveMb: real.memAvailableMb - p.startMb - 10 * p.idleMb }), {
    capsules: 0,
  });
  assert.equal(roomy.limits.find((l) => l.resource === 'memory')!.room, 11);
});

test('tasks, the host file table and the agent fds each refuse at their own limit', () => {
  const p = config().perCapsule;
  const at = (over: Partial<HostReadings>) =>
    assessCapacity({ ...real, ...over }, config({ memoryReserveMb: 0 }), { capsules: 0 });
  const tasksFull = at({ taskLimit: real.tasks + config().taskReserve + p.tasks - 1 });
  assert.equal(tasksFull.full?.resource, 'tasks');
  assert.match(tasksFull.full?.full ?? '', /kernel\.pid_max/);
  assert.equal(at({ taskLimit: real.tasks + config().taskReserve + p.tasks }).full, undefined);
  const filesFull = at({ hostFileMax: real.hostFiles + config().hostFileReserve + p.hostFiles - 1 });
  assert.equal(filesFull.full?.resource, 'host_files');
  assert.match(filesFull.full?.full ?? '', /fs\.file-max/);
  const fdsFull = at({ agentFdLimit: real.agentFds + config().agentFdReserve + p.agentFds - 1 });
  assert.equal(fdsFull.full?.resource, 'agent_fds');
  assert.match(fdsFull.full?.full ?? '', new RegExp(`${real.agentFds} of its RLIMIT_NOFILE`));
});

test('network slots count pre-built networks too; uid ranges count capsules', () => {
  const c = config({ memoryReserveMb: 0, netSlots: 10, idRanges: 20 });
  assert.equal(assessCapacity(real, c, { capsules: 8, spareNetworks: 1 }).room, 1);
  const net = assessCapacity(real, c, { capsules: 8, spareNetworks: 2 });
  assert.equal(net.full?.resource, 'network_slots');
  assert.match(net.full?.full ?? '', /10 of the 10 .*WRENN_NET_POOL/);
  const ids = assessCapacity(real, config({ memoryReserveMb: 0, idRanges: 5 }), { capsules: 5 });
  assert.equal(ids.full?.resource, 'id_ranges');
  // The tightest limit sets the room.
  assert.equal(
    assessCapacity(real, config({ memoryReserveMb: 0, netSlots: 100, idRanges: 7, maxCapsules: 50 }), { capsules: 2 })
      .room,
    5,
  );
});

test('configuration from the environment: whole numbers or a clear error', () => {
  assert.equal(envCount('X', 7, {}), 7);
  assert.equal(envCount('X', 7, { X: ' 12 ' }), 12);
  assert.throws(
    () => envCount('WRENN_MAX_CAPSULES', 0, { WRENN_MAX_CAPSULES: '-1' }),
    /WRENN_MAX_CAPSULES=-1 must be a whole number/,
  );
  assert.throws(() => capacityConfig({}, {}, { WRENN_MEMORY_RESERVE_MB: '1G' }), /WRENN_MEMORY_RESERVE_MB=1G/);
  const c = capacityConfig({ netSlots: 16384, idRanges: 4094 }, {}, { WRENN_MAX_CAPSULES: '1000' });
  assert.equal(c.maxCapsules, 1000);
  assert.equal(c.memoryReserveMb, 1024);
  assert.equal(c.netSlots, 16384);
});
