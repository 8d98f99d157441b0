// `wrenn capsule fork <id> [--count N] [--timeout S]`: new capsules from one copy of a running one.
// The fork ids go to stdout one per line (so `ids=$(wrenn capsule fork ...)` works); forks that
// did not start are named on stderr and make the exit code 1.
import { CAPSULE_LIMITS, FORK_LIMITS } from '@wrenn/protocol';
import { Capsule, type WrennError } from '@wrenn/sdk';
import { infoJson } from './capsule.js';
import { CliError, connection, parseIntOption, printJson, run } from './support.js';

export const fork = (id: string, o: { count?: string; timeout?: string; json?: boolean }) =>
  run(async () => {
    // The contract's bounds, so a bad value is refused before any request.
    const count = parseIntOption('--count', o.count, 1, FORK_LIMITS.maxCount);
    const timeoutSec = parseIntOption('--timeout', o.timeout, 0, CAPSULE_LIMITS.maxTimeoutSec);
    const source = await Capsule.connect(id, { ...connection(), autoResume: false });
    const r = await source.fork({
      ...(count !== undefined ? { count } : {}),
      ...(timeoutSec !== undefined ? { timeoutSec } : {}),
    });
    const failed = r.forks.filter((f): f is WrennError => !(f instanceof Capsule));
    if (o.json) {
      printJson({
        source_id: id,
        processes_restarted: r.processesRestarted,
        forks: r.forks.map((f) =>
          f instanceof Capsule ? infoJson(f.info) : { error: { code: f.code, message: f.message } },
        ),
      });
    } else {
      for (const f of r.forks) if (f instanceof Capsule) process.stdout.write(`${f.capsuleId}\n`);
      if (r.processesRestarted)
        process.stderr.write("the forks have the source's files; their processes started afresh (namespace runtime)\n");
    }
    if (failed.length > 0)
      throw new CliError(
        `${failed.length} of ${r.forks.length} forks did not start: ${failed.map((f) => f.message).join('; ')}`,
      );
  });
