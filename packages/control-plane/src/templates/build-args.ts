// The ARG values in scope while a build runs one stage (Docker's rules: a stage's ARG is in scope
// from its line to the end of the stage; `ARG NAME` with no default takes the build argument or
// else the global ARG's value), the variables a step is substituted with (ENV wins over ARG, as in
// Docker), and the part of a step's cache key the ARGs make: a RUN sees every ARG in scope (they
// are its environment), any other step only the ones it names.
import type { ArgStep, ParsedDockerfile, Step } from './dockerfile.js';
import { substitute, variablesIn } from './dockerfile.js';

export class StageArgs {
  /** ARG name -> value, for the ARGs declared so far in this stage that have a value. */
  readonly values: Record<string, string> = {};

  constructor(private readonly parsed: Pick<ParsedDockerfile, 'buildArgs' | 'globalArgs'>) {}

  /** Applies an ARG step; `env` is the ENV in effect (its defaults may name variables). */
  declare(step: ArgStep, env: Record<string, string>): void {
    const build = this.parsed.buildArgs ?? {};
    const global = this.parsed.globalArgs ?? {};
    const value = Object.hasOwn(build, step.name)
      ? build[step.name]
      : step.defaultValue !== null
        ? substitute(step.defaultValue, this.vars(env))
        : Object.hasOwn(global, step.name)
          ? global[step.name]
          : undefined;
    if (value === undefined) delete this.values[step.name];
    else this.values[step.name] = value;
  }

  /**
   * What `$NAME` means in this step, and a RUN's environment: the ARGs in scope overlaid by the
   * ENV (ARGs are never saved into the template).
   */
  vars(env: Record<string, string>): Record<string, string> {
    return { ...this.values, ...env };
  }

  /** The ARG values this step depends on, as text for its cache key ('' when none). */
  keyPart(step: Step): string {
    const names =
      step.kind === 'RUN'
        ? Object.keys(this.values)
        : [...variablesIn(step.text)].filter((n) => Object.hasOwn(this.values, n));
    if (names.length === 0) return '';
    return JSON.stringify(names.sort().map((n) => [n, this.values[n]]));
  }
}
