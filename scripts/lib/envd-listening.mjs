// Waits for an envd child process to log its "envd listening" line and gives back the port it
// took (envd is started with --port 0), so the bundler's code-cache warm-up and the benches that
// prime a variant bundle read the port one way. The child's stderr must be a pipe.

/**
 * @param {import('node:child_process').ChildProcess} child envd, spawned with stdio[2] = 'pipe'
 * @returns {{ port: Promise<number>, stderr: () => string }} the port once listening (rejects if
 *   envd exits first) and everything envd wrote to stderr so far, for error messages
 */
export function envdListening(child) {
  let stderr = '';
  const port = new Promise((resolvePort, reject) => {
    child.stderr.on('data', (d) => {
      stderr += d;
      const m = /"msg":"envd listening","port":(\d+)/.exec(stderr);
      if (m) resolvePort(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`envd exited with ${code} before listening:\n${stderr}`)));
  });
  return { port, stderr: () => stderr };
}
