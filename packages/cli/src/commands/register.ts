// The user commands of `wrenn` (capsules, exec, shell, files, snapshots, volumes, hosts, templates, login). Only
// their definitions live here; each action loads its module (and the SDK) when it runs, so
// `wrenn --help` and the server commands never load them.
import type { Command } from 'commander';

const collect = (v: string, prev: string[] = []) => [...prev, v];

const CONNECTION_HELP = `
Connection: WRENN_API_KEY and WRENN_BASE_URL (default http://127.0.0.1:8000), else what
\`wrenn login\` stored in ~/.config/wrenn/config.json.`;

export function registerUserCommands(program: Command): void {
  const capsule = program
    .command('capsule')
    .description('create, list, inspect, pause, resume and destroy capsules')
    .addHelpText('after', CONNECTION_HELP);
  capsule
    .command('create')
    .description('start a capsule and print its id')
    .option('-t, --template <name>', "template or snapshot to start from (default 'minimal')")
    .option(
      '--image <ref>',
      'container image to start from instead (registry/repository[:tag][@digest]); its registry password or token from WRENN_REGISTRY_PASSWORD',
    )
    .option('--registry-user <name>', "user name for --image's registry (with WRENN_REGISTRY_PASSWORD)")
    .option('--vcpus <n>', 'virtual CPUs')
    .option('--memory <mb>', 'memory in MiB')
    .option('--timeout <sec>', 'seconds of inactivity before the --on-timeout action (0 = never; default 300)')
    .option('--on-timeout <action>', 'kill (default), pause (memory kept) or hibernate (disk only)')
    .option('--auto-resume', 'when paused, resume on the next request through the sandbox proxy')
    .option('-e, --env <KEY=VALUE>', 'environment variable of every process (repeatable)', collect)
    .option('-m, --metadata <KEY=VALUE>', 'label to find it by (repeatable)', collect)
    .option('--field <KEY=VALUE>', "one of the contract's plain fields, e.g. name=web (repeatable)", collect)
    .option('--volume <NAME:/PATH>', 'mount a volume read-write at PATH (repeatable; namespace runtime)', collect)
    .option(
      '--allow-out <dest>',
      'CIDR, IP, domain or *.domain it may reach whatever --deny-out says (repeatable)',
      collect,
    )
    .option('--deny-out <cidr>', 'CIDR or IP it may not reach; 0.0.0.0/0 = all but --allow-out (repeatable)', collect)
    .option(
      '--private',
      'its ports answer through the sandbox proxy only with its traffic access token (printed; header e2b-traffic-access-token)',
    )
    .option(
      '--mask-host <host>',
      "the Host header its servers see (${PORT} becomes the port, e.g. 'localhost:${PORT}')",
    )
    .option('--json', 'print the capsule as JSON')
    .action(async (o) => (await import('./capsule.js')).create(o));
  capsule
    .command('ls')
    .alias('list')
    .description('list capsules (newest first)')
    .option('--state <states>', 'only these states, comma-separated (running,paused,...)')
    .option('-t, --template <name>', 'only capsules of this template')
    .option('-m, --metadata <KEY=VALUE>', 'only capsules with this label (repeatable)', collect)
    .option('--json', 'print JSON')
    .action(async (o) => (await import('./capsule.js')).list(o));
  capsule
    .command('info <id>')
    .description("show a capsule's details")
    .option('--json', 'print JSON')
    .action(async (id: string, o) => (await import('./capsule.js')).info(id, o));
  capsule
    .command('rm <id...>')
    .alias('kill')
    .description('destroy capsules (their processes and files are gone)')
    .action(async (ids: string[]) => (await import('./capsule.js')).remove(ids));
  capsule
    .command('pause <id>')
    .description('pause a capsule (memory and disk kept)')
    .option('--hibernate', 'keep the disk only (frees memory; resuming restarts processes)')
    .action(async (id: string, o) => (await import('./capsule.js')).pause(id, o));
  capsule
    .command('resume <id>')
    .description('resume a paused or hibernated capsule')
    .option('--timeout <sec>', 'new timeout in seconds')
    .action(async (id: string, o) => (await import('./capsule.js')).resume(id, o));
  capsule
    .command('ping <id>')
    .description("restart a capsule's timeout clock")
    .action(async (id: string) => (await import('./capsule.js')).ping(id));
  capsule
    .command('network <id>')
    .description(
      "show a capsule's egress policy, or replace it with the given --allow-out/--deny-out (new connections follow it at once)",
    )
    .option(
      '--allow-out <dest>',
      'CIDR, IP, domain or *.domain it may reach whatever --deny-out says (repeatable)',
      collect,
    )
    .option('--deny-out <cidr>', 'CIDR or IP it may not reach; 0.0.0.0/0 = all but --allow-out (repeatable)', collect)
    .option('--clear', 'remove every egress rule')
    .option('--json', 'print JSON')
    .action(async (id: string, o) => (await import('./network.js')).network(id, o));
  capsule
    .command('fork <id>')
    .description(
      'new capsules from one copy of a running capsule, which keeps running (namespace runtime: files copied, processes restart)',
    )
    .option('--count <n>', 'forks to make (default 1)')
    .option('--timeout <sec>', "each fork's timeout in seconds (default the source's)")
    .option('--json', 'print the forks as JSON')
    .action(async (id: string, o) => (await import('./fork.js')).fork(id, o));

  capsule
    .command('run-code <id> <code>')
    .description(
      "run code in a capsule's code interpreter (template code-interpreter-v1); `-` reads the code from stdin",
    )
    .option('-l, --language <language>', 'python (default), javascript, bash, ...')
    .option('--context <id>', 'run in this code context instead of the default one')
    .option('-e, --env <KEY=VALUE>', 'environment variable for this run (repeatable)', collect)
    .option('--timeout <sec>', 'interrupt the code after this many seconds (default 60; 0 = never)')
    .option('--json', 'print stdout, stderr, results and error as JSON')
    .action(async (id: string, code: string, o) => (await import('./run-code.js')).runCode(id, code, o));

  program
    .command('exec <id> <command...>')
    .description('run a command in a capsule; output is streamed and its exit code is returned')
    .option('--cwd <dir>', 'working directory')
    .option('-u, --user <user>', "user to run as (default: the capsule's 'user')")
    .option('-e, --env <KEY=VALUE>', 'environment variable (repeatable)', collect)
    .option('--timeout <sec>', 'kill the command after this many seconds')
    .addHelpText(
      'after',
      `
Put the command after --: wrenn exec <id> -- ls -la /tmp
One quoted argument is a shell line: wrenn exec <id> -- 'echo $HOME | wc -c'
Piped input is forwarded: echo hi | wrenn exec <id> -- cat`,
    )
    .action(async (id: string, words: string[], o) => {
      const { parsePairs } = await import('./support.js');
      const envs = parsePairs('--env', o.env);
      return (await import('./exec.js')).exec(id, words, { ...o, ...(envs ? { envs } : {}) });
    });

  program
    .command('shell <id>')
    .description('open an interactive terminal in a capsule (Ctrl-D or `exit` ends it)')
    .option('--cmd <program>', 'program to run instead of the login shell')
    .action(async (id: string, o) => (await import('./shell.js')).shell(id, o));

  const files = program.command('files').description('copy files into and out of a capsule, list directories');
  files
    .command('put <id> <local> <remote>')
    .description('upload a local file (remote ending in / keeps the file name)')
    .option('-u, --user <user>', 'owner of the new file')
    .action(async (id: string, local: string, remote: string, o) =>
      (await import('./files.js')).put(id, local, remote, o),
    );
  files
    .command('get <id> <remote> [local]')
    .description('download a file (to stdout when local is omitted or -)')
    .option('-u, --user <user>', 'user to read as')
    .action(async (id: string, remote: string, local: string | undefined, o) =>
      (await import('./files.js')).get(id, remote, local, o),
    );
  files
    .command('ls <id> [path]')
    .description('list a directory (default /)')
    .option('--depth <n>', 'levels to descend (1-16)')
    .option('-u, --user <user>', 'user to list as')
    .option('--json', 'print JSON')
    .action(async (id: string, path: string | undefined, o) => (await import('./files.js')).ls(id, path, o));

  const snapshot = program.command('snapshot').description('save capsules as snapshots that new capsules start from');
  snapshot
    .command('create <capsule-id> <name>')
    .description('snapshot a running or paused capsule')
    .action(async (id: string, name: string) => (await import('./snapshot.js')).snapshotCreate(id, name));
  snapshot
    .command('ls')
    .alias('list')
    .description('list snapshots')
    .option('--json', 'print JSON')
    .action(async (o) => (await import('./snapshot.js')).snapshotList(o));
  snapshot
    .command('rm <name...>')
    .description('delete snapshots (refused while capsules use them)')
    .action(async (names: string[]) => (await import('./snapshot.js')).snapshotRemove(names));

  const volume = program.command('volume').description('persistent storage with a size limit, mounted into capsules');
  volume
    .command('create <name>')
    .description('create a volume (prints its id)')
    .option('-s, --size <MiB>', 'size limit in MiB (default 1024)')
    .option('--json', 'print JSON')
    .action(async (name: string, o) => (await import('./volume.js')).volumeCreate(name, o));
  volume
    .command('ls')
    .alias('list')
    .description('list volumes')
    .option('--json', 'print JSON')
    .action(async (o) => (await import('./volume.js')).volumeList(o));
  volume
    .command('rm <name-or-id...>')
    .description('delete volumes and their files (refused while a capsule mounts one)')
    .action(async (names: string[]) => (await import('./volume.js')).volumeRemove(names));

  const host = program
    .command('host')
    .description('list the hosts that run capsules; drain them, set their warm pools (admin key)');
  host
    .command('ls')
    .alias('list')
    .description('list hosts, their status and load')
    .option('--json', 'print JSON')
    .action(async (o) => (await import('./host.js')).hostList(o));
  host
    .command('drain <id>')
    .description('take no new capsules on this host; its capsules stay (admin key)')
    .action(async (id: string) => (await import('./host.js')).hostDrain(id, true));
  host
    .command('undrain <id>')
    .description('let a drained host take new capsules again (admin key)')
    .action(async (id: string) => (await import('./host.js')).hostDrain(id, false));
  host
    .command('warm-pool <id> [sizes]')
    .description(
      'show or set the ready capsules a host keeps per template, e.g. minimal=2,tpl-abc=1 (admin key; kept across agent restarts)',
    )
    .option('--clear', 'forget the sizes set here (the agent keeps its own --warm-pool)')
    .option('--json', 'print JSON')
    .action(async (id: string, sizes: string | undefined, o) => (await import('./host.js')).hostWarmPool(id, sizes, o));

  program
    .command('image')
    .description('container images cached on the hosts')
    .command('prune')
    .description(
      'remove image templates, cached image layers and build file sets nothing uses (admin key; hosts also do it periodically)',
    )
    .option('--older-than <sec>', 'only what was unused this many seconds (default: the configured keep times; 0: all)')
    .option('--json', 'print JSON')
    .action(async (o) => (await import('./host.js')).imagePrune(o));

  const template = program.command('template').description('list, build and delete templates');
  template
    .command('ls')
    .alias('list')
    .description('list built-in and own templates')
    .option('--json', 'print JSON')
    .action(async (o) => (await import('./snapshot.js')).templateList(o));
  template
    .command('rm <name...>')
    .description('delete own templates (refused while capsules use them); name:tag removes that tag')
    .action(async (names: string[]) => (await import('./snapshot.js')).templateRemove(names));
  template
    .command('tags <name>')
    .description("list a template's tags and their builds ('default' is the latest build)")
    .option('--json', 'print JSON')
    .action(async (name: string, o) => (await import('./snapshot.js')).templateTags(name, o));
  template
    .command('tag <ref> <tag...>')
    .description("point tags at the build ref names ('name' = its latest build, or 'name:tag')")
    .action(async (ref: string, tags: string[]) => (await import('./snapshot.js')).templateTag(ref, tags));
  template
    .command('build')
    .description('build a template from a Dockerfile')
    .option('-f, --file <path>', 'Dockerfile', 'Dockerfile')
    .option('-n, --name <name>', 'name of the template')
    .option('-c, --context <dir>', 'build context for COPY/ADD', '.')
    .option(
      '--build-arg <NAME=VALUE>',
      'value of a Dockerfile ARG (repeatable; NAME alone takes it from the environment)',
      collect,
    )
    .action(async (o) => (await import('./snapshot.js')).templateBuild(o));

  program
    .command('login')
    .description('store an API key and URL for the other commands (checked first)')
    .option('--api-key <key>', 'the key (prompted for when omitted)')
    .option('--base-url <url>', 'the Wrenn API (default http://127.0.0.1:8000)')
    .action(async (o) => (await import('./login.js')).login(o));
}
