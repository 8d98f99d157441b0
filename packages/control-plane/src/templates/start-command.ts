// How a template's start command comes about, as Docker composes a container's command: the
// ENTRYPOINT and CMD vectors (exec form as written, shell form as `/bin/sh -c <text>`) are kept as
// metadata, and the start command is ENTRYPOINT followed by CMD. An image's own ENTRYPOINT/CMD are
// only metadata (as E2B does, a capsule runs no command the template author did not ask for: a REPL
// image's `python3` would just exit); a Dockerfile's CMD or ENTRYPOINT asks, and then composes with
// the ENTRYPOINT it inherits; E2B's setStartCmd is one shell command line taken as it is.
import type { TemplateConfig } from '../db/repositories/template-configs-extra.js';
import { type StartStep, shellQuote } from './dockerfile.js';

/** Docker's vector of a CMD/ENTRYPOINT: the exec form as written, the shell form through /bin/sh -c. */
export const startVector = (execForm: string[] | null, shellText: string): string[] =>
  execForm ?? ['/bin/sh', '-c', shellText];

/**
 * ENTRYPOINT then CMD as one shell command line for the capsule's start process; null when both are
 * empty. A bare `/bin/sh -c <text>` is given as <text> itself (the start process runs it that way).
 */
export function composeStartCommand(entrypoint: readonly string[], cmd: readonly string[]): string | null {
  const argv = [...entrypoint, ...cmd];
  if (argv.length === 0) return null;
  if (argv.length === 3 && argv[0] === '/bin/sh' && argv[1] === '-c') return argv[2]!;
  return argv.map(shellQuote).join(' ');
}

/** A CMD / ENTRYPOINT / START step applied to a template's configuration, as Docker does. */
export function applyStartStep(cfg: Pick<TemplateConfig, 'startCmd' | 'entrypoint' | 'cmd'>, step: StartStep): void {
  switch (step.kind) {
    case 'CMD':
      cfg.cmd = step.argv;
      cfg.startCmd = composeStartCommand(cfg.entrypoint, cfg.cmd);
      return;
    case 'ENTRYPOINT':
      // A new ENTRYPOINT drops the CMD it inherited.
      cfg.entrypoint = step.argv;
      cfg.cmd = [];
      cfg.startCmd = composeStartCommand(cfg.entrypoint, cfg.cmd);
      return;
    case 'START':
      cfg.startCmd = step.command;
      return;
  }
}
