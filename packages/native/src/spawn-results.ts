// What the native spawn's raw results mean in Node's terms: a signal number's name, and the error
// child_process gives for a start that failed. Plain JS (no addon), so envd's bundle shares it.
import { constants } from 'node:os';

const signalNames = new Map<number, NodeJS.Signals>();
for (const [name, num] of Object.entries(constants.signals)) signalNames.set(num, name as NodeJS.Signals);
const errnoNames = new Map<number, string>();
for (const [name, num] of Object.entries(constants.errno)) if (!errnoNames.has(num)) errnoNames.set(num, name);

/** SIGTERM for 15; `SIG<n>` for a number Node does not name. */
export function signalName(signal: number): NodeJS.Signals {
  return signalNames.get(signal) ?? (`SIG${signal}` as NodeJS.Signals);
}

/** The error child_process gives for a start that failed (err.code ENOENT, message `spawn mount ENOENT`). */
export function spawnError(file: string, errno: number, stage: string): NodeJS.ErrnoException {
  const code = errnoNames.get(errno) ?? `errno ${errno}`;
  const plain = stage === 'exec' || stage === 'chdir';
  const err: NodeJS.ErrnoException = new Error(
    plain ? `spawn ${file} ${code}` : `spawn ${file} ${code} (${stage} failed)`,
  );
  err.code = code;
  err.errno = -errno;
  err.syscall = plain ? `spawn ${file}` : stage;
  err.path = file;
  return err;
}
