// `code-interpreter-v1`: `base` plus Debian's Jupyter stack (python3-ipykernel, jupyter-client)
// and the data libraries E2B's code interpreter ships (numpy, pandas, matplotlib, scipy, seaborn,
// requests, bs4), Node.js and bash. Only packages: the code-interpreter server itself is part of
// envd's bundle (/opt/wrenn/envd/code-interpreter), so a server change never invalidates this layer.
// The marker file tells envd to start that server on port 49999 when the capsule boots.
import { spawn } from 'node:child_process';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { ProgressFn, TemplateRecipe } from './recipe.js';

export const CODE_INTERPRETER_TEMPLATE = 'code-interpreter-v1';
/** The port @e2b/code-interpreter talks to (its JUPYTER_PORT). */
export const CODE_INTERPRETER_PORT = 49999;
/** Where envd looks to know it should run the code-interpreter server (see envd's code-interpreter.ts). */
export const CODE_INTERPRETER_MARKER = 'etc/wrenn/code-interpreter.json';

const PACKAGES = [
  'python3-ipykernel',
  'python3-jupyter-client',
  'python3-numpy',
  'python3-pandas',
  'python3-matplotlib',
  'python3-scipy',
  'python3-seaborn',
  'python3-requests',
  'python3-bs4',
  'python3-pil',
  'nodejs',
  'bash',
];

// apt in the template's root, in a mount and pid namespace of its own: /proc and any daemon a
// package's script starts disappear with it, whatever happens. (/proc is mounted from outside: the
// root's setuid `mount` is owned by the shifted root id, so inside the chroot it is not root's.)
const APT_SCRIPT = [
  'set -e',
  'export DEBIAN_FRONTEND=noninteractive',
  'apt-get update -q',
  `apt-get install -y -q --no-install-recommends ${PACKAGES.join(' ')}`,
  'apt-get clean',
  'rm -rf /var/lib/apt/lists/* /root/.cache',
].join('\n');

function aptInRoot(root: string, onProgress: ProgressFn): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'unshare',
      [
        '--mount',
        '--pid',
        '--fork',
        '--kill-child',
        `--mount-proc=${join(root, 'proc')}`,
        'chroot',
        root,
        '/bin/sh',
        '-c',
        APT_SCRIPT,
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C', HOME: '/root' },
      },
    );
    const tail: string[] = [];
    const onLine = (line: string) => {
      tail.push(line);
      if (tail.length > 30) tail.shift();
      if (/^(Get:\d+ |Setting up |Fetched |E: )/.test(line)) onProgress(`${CODE_INTERPRETER_TEMPLATE}: ${line}`);
    };
    createInterface({ input: child.stdout }).on('line', onLine);
    createInterface({ input: child.stderr }).on('line', onLine);
    child.on('error', (err) => reject(new Error(`could not run unshare/chroot for apt-get: ${err.message}`)));
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`apt-get in the template exited with code ${code}; last output:\n${tail.join('\n')}`));
    });
  });
}

export const codeInterpreterRecipe: TemplateRecipe = {
  description: `base with ${PACKAGES.join(', ')} (E2B code interpreter, server on port 49999)`,
  parent: 'base',
  // Its version includes base's: a changed base rebuilds this one over it too.
  inputs: { packages: PACKAGES, script: APT_SCRIPT, port: CODE_INTERPRETER_PORT, revision: 1 },
  readyPorts: [CODE_INTERPRETER_PORT],
  async build(root, onProgress) {
    // apt needs the host's resolver; capsules get their own /etc/resolv.conf at start.
    await copyFile('/etc/resolv.conf', join(root, 'etc/resolv.conf')).catch(() => undefined);
    onProgress(`${CODE_INTERPRETER_TEMPLATE}: apt-get install ${PACKAGES.join(' ')}; this takes a few minutes`);
    await aptInRoot(root, onProgress);
    await mkdir(join(root, 'etc/wrenn'), { recursive: true });
    await writeFile(
      join(root, CODE_INTERPRETER_MARKER),
      `${JSON.stringify({ port: CODE_INTERPRETER_PORT, user: 'root', cwd: '/home/user' }, null, 2)}\n`,
    );
  },
};
