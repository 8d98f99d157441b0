// Starts bench/lib/density-stack.mjs (the Wrenn stack of the density benches) as a child process in
// a process group of its own (a Ctrl-C on the terminal reaches the bench, which then stops the stack
// in order) and resolves with {child, exited, ...the JSON line it prints when ready}.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const DENSITY_STACK_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'density-stack.mjs');

export function spawnDensityStack(options, nodeFlags = []) {
  const child = spawn(process.execPath, [...nodeFlags, DENSITY_STACK_SCRIPT, JSON.stringify(options)], {
    stdio: ['pipe', 'pipe', 'inherit'],
    detached: true,
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', (line) => {
      try {
        resolve({ child, exited, ...JSON.parse(line) });
      } catch (err) {
        reject(new Error(`the stack printed ${line.slice(0, 200)}: ${err.message}`));
      }
    });
    void exited.then(({ code, signal }) =>
      reject(new Error(`the stack exited (${signal ?? code}) before it was ready`)),
    );
  });
}
