// What an idle envd gives back. Most of an idle envd's RSS is node's executable mapped from the
// page cache (~39 MB), of which ~16 MB is read-only data start-up reads once and then never again:
// the dynamic symbol tables searched while libraries load, the V8 start-up snapshot, the code cache
// and sources of node's own modules. Once envd has been idle for a moment after some work, it
// unmaps those pages from itself (madvise MADV_DONTNEED on node's clean, read-only, non-executable
// file mappings; anything touched again faults back in from the page cache) and trims glibc's free
// heap. The pages stay in the page cache while other capsules' envd map them; unmapped everywhere,
// the kernel can reclaim them under memory pressure. Code (r-xp) and every written page stay.
// Needs @wrenn/native (adviseDontNeed, mallocTrim); without it this does nothing.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { NativeBinding } from '@wrenn/native';
import { envdHeartbeat, Heartbeat } from './heartbeat.js';

/** What envd uses of the addon here (typed by @wrenn/native; the import is types only). */
export type MemoryBinding = Pick<NativeBinding, 'adviseDontNeed' | 'mallocTrim'>;

export interface Range {
  start: number;
  length: number;
}

/**
 * Mappings of `file` that are private, read-only, not executable and hold no anonymous page, from
 * the text of /proc/self/smaps. A mapping with an anonymous page (e.g. RELRO, written by the
 * dynamic linker and then made read-only) is never chosen: dropping it would lose that write.
 */
export function cleanReadOnlyMappings(smaps: string, file: string): Range[] {
  const ranges: Range[] = [];
  let current: { start: number; end: number; eligible: boolean } | undefined;
  const finish = () => {
    if (current?.eligible) ranges.push({ start: current.start, length: current.end - current.start });
    current = undefined;
  };
  for (const line of smaps.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) [0-9a-f]+ \S+ \d+\s*(.*)$/.exec(line);
    if (head) {
      finish();
      const [, from = '', to = '', perms = '', path = ''] = head;
      current = {
        start: Number.parseInt(from, 16),
        end: Number.parseInt(to, 16),
        eligible: perms === 'r--p' && path === file,
      };
      continue;
    }
    if (!current?.eligible) continue;
    const field = /^(Anonymous|Private_Dirty|Shared_Dirty|Swap):\s+(\d+) kB/.exec(line);
    if (field && field[2] !== '0') current.eligible = false;
  }
  finish();
  return ranges;
}

function loadBinding(): MemoryBinding | undefined {
  try {
    const b = createRequire(import.meta.url)('@wrenn/native/addon') as Partial<MemoryBinding>;
    return typeof b.adviseDontNeed === 'function' && typeof b.mallocTrim === 'function'
      ? (b as MemoryBinding)
      : undefined;
  } catch {
    return undefined;
  }
}

/** Releases what it can now; returns the bytes of mappings dropped (0 without the addon). */
export function releaseIdleMemory(binding: MemoryBinding | undefined = loadBinding()): number {
  if (!binding) return 0;
  let bytes = 0;
  for (const r of cleanReadOnlyMappings(readFileSync('/proc/self/smaps', 'utf8'), process.execPath)) {
    try {
      binding.adviseDontNeed(r.start, r.length);
      bytes += r.length;
    } catch {
      // a mapping that changed meanwhile: leave it
    }
  }
  binding.mallocTrim();
  return bytes;
}

/**
 * Watches envd's CPU time at each beat of envd's heartbeat (1 s while active): after a beat with
 * (almost) none, following at least `minWorkMs` of work since the last release, it releases idle
 * memory. Work is CPU time above an idle floor (0.1 % of a core) per beat, so an idle envd's own
 * trickle (its beat, the port scan gate) never adds up to a release: /proc/self/smaps is read
 * once after a burst of activity, never periodically while idle. A release that fails (EMFILE/ENFILE opening
 * /proc/self/smaps when a tenant exhausted the file table) is logged and tried again at the next
 * idle check: an error here must never end envd.
 */
const MAX_LOAD_BACKOFF_MS = 10 * 60_000;

export function startIdleMemoryRelease(
  opts: { heartbeat?: Heartbeat; checkMs?: number; minWorkMs?: number; binding?: MemoryBinding } = {},
): () => void {
  // The addon is loaded at the first release, not here: envd's start-up is a capsule's boot time.
  let binding: MemoryBinding | undefined;
  // checkMs (tests): a heartbeat of its own at that fixed period.
  const heartbeat =
    opts.heartbeat ??
    (opts.checkMs !== undefined ? new Heartbeat({ periodMs: opts.checkMs, maxPeriodMs: opts.checkMs }) : envdHeartbeat);
  let loadBackoffMs = heartbeat.periodMs;
  let loadAgainAt = 0;
  const minWorkUs = (opts.minWorkMs ?? 20) * 1000;
  const cpu = () => {
    const u = process.cpuUsage();
    return u.user + u.system;
  };
  let last = cpu();
  let workSinceRelease = Number.POSITIVE_INFINITY; // start-up itself counts as work
  return heartbeat.on((elapsedMs) => {
    const now = cpu();
    const used = now - last;
    last = now;
    // Below 0.1 % of a core (elapsedMs microseconds per elapsedMs milliseconds) envd does nothing.
    workSinceRelease += Math.max(0, used - elapsedMs);
    // "Idle": under 2 % of one core in the last interval.
    if (used > elapsedMs * 20 || workSinceRelease < minWorkUs) return;
    if (!binding) {
      // Not found may also mean no fd was free to look for it (a full file table resolves nothing):
      // asked again later, less and less often, rather than given up on.
      if (Date.now() < loadAgainAt) return;
      binding = opts.binding ?? loadBinding();
      if (!binding) {
        loadBackoffMs = Math.min(loadBackoffMs * 2, MAX_LOAD_BACKOFF_MS);
        loadAgainAt = Date.now() + loadBackoffMs;
        return;
      }
    }
    let bytes: number;
    try {
      bytes = releaseIdleMemory(binding);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      logLine({
        level: 'warn',
        msg: 'idle: memory release failed; retried at the next idle check',
        code: e?.code,
        error: e?.message ?? String(err),
      });
      return;
    }
    logLine({ level: 'debug', msg: 'idle: released clean read-only mappings', mb: Math.round(bytes / 1e5) / 10 });
    last = cpu();
    workSinceRelease = 0;
  });
}

/** One JSON log line on stderr; a failing write (a closed or full log pipe) is not envd's end either. */
function logLine(entry: Record<string, unknown>): void {
  try {
    process.stderr.write(`${JSON.stringify(entry)}\n`);
  } catch {
    // nowhere to report it
  }
}
