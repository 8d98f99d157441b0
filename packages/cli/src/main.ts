// The `wrenn` command: one entry point for every program (envd, host agent, control plane)
// and for the user commands. Subcommands load their code lazily so `wrenn exec` starts fast.
import { readFileSync } from 'node:fs';
import { ENVD_PORT } from '@wrenn/protocol/contract';
import { Command, Option } from 'commander';
import { registerUserCommands } from './commands/register.js';

const program = new Command('wrenn')
  .description('Wrenn: self-hosted secure sandboxes (capsules) for AI agents')
  .version(
    (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version,
    '-V, --version',
  )
  .option('--debug', 'show stack traces on errors')
  .showHelpAfterError();

program
  .command('envd')
  .description('run envd, the agent inside a capsule (E2B envd protocol)')
  .addOption(new Option('--port <port>', 'port to listen on').default(String(ENVD_PORT)).env('WRENN_ENVD_PORT'))
  .addOption(new Option('--host <addr>', 'address to listen on').default('0.0.0.0').env('WRENN_ENVD_HOST'))
  .action(async (opts: { port: string; host: string }) => {
    const { runEnvdFromCli } = await import('@wrenn/envd');
    await runEnvdFromCli({ port: parsePort(opts.port), host: opts.host });
  });

program
  .command('agent')
  .description('run the host agent that owns the capsules on this machine (root)')
  .addOption(
    new Option('--listen <addr>', 'host:port for the Connect service')
      .default('127.0.0.1:50051')
      .env('WRENN_AGENT_LISTEN'),
  )
  .addOption(new Option('--data-dir <dir>', 'state, images and capsules').default('/var/lib/wrenn').env('WRENN_DIR'))
  .addOption(new Option('--control-plane <url>', 'register with this control plane').env('WRENN_CONTROL_PLANE'))
  .addOption(new Option('--token <token>', 'one-time registration token').env('WRENN_AGENT_TOKEN'))
  .addOption(
    new Option(
      '--advertise-url <url>',
      'URL the control plane reaches this agent at (default: https://<listen>, http:// with --tls off)',
    ).env('WRENN_AGENT_ADVERTISE_URL'),
  )
  .addOption(
    new Option('--tls <mode>', 'serve TLS with a certificate made once under the data dir (the control plane pins it)')
      .choices(['self-signed', 'off'])
      .default('self-signed')
      .env('WRENN_AGENT_TLS'),
  )
  .addOption(new Option('--tls-cert <file>', 'serve TLS with this PEM certificate').env('WRENN_AGENT_TLS_CERT'))
  .addOption(new Option('--tls-key <file>', 'the PEM key of --tls-cert').env('WRENN_AGENT_TLS_KEY'))
  .addOption(
    new Option('--control-plane-ca <file>', 'PEM CA to trust for an https:// control plane').env(
      'WRENN_CONTROL_PLANE_CA',
    ),
  )
  .addOption(
    new Option('--warm-pool <spec>', 'ready capsules kept per template, e.g. minimal=2')
      .default('minimal=2')
      .env('WRENN_WARM_POOL'),
  )
  .action(async (opts: Record<string, string | undefined>) => {
    const { runAgentFromCli } = await import('@wrenn/host-agent');
    await runAgentFromCli(opts, {
      async onListening(agent) {
        if (!opts.controlPlane) return;
        const { registerWithControlPlane } = await import('@wrenn/host-agent');
        const { join } = await import('node:path');
        const { readFileSync } = await import('node:fs');
        const agentUrl = opts.advertiseUrl ?? agent.url;
        const scheme = agent.tls ? 'https' : 'http';
        if (/^https?:\/\/(0\.0\.0\.0|\[::\])(:|$)/.test(agentUrl)) {
          throw new Error(
            `the agent listens on every address (${agent.url}); pass --advertise-url ${scheme}://<this host's address>:${agent.port} so the control plane can reach it`,
          );
        }
        if (!agentUrl.startsWith(`${scheme}://`)) {
          throw new Error(
            `--advertise-url ${agentUrl} must start with ${scheme}:// (the agent serves ${agent.tls ? 'TLS' : 'plain HTTP: --tls off'})`,
          );
        }
        let controlPlaneCa: string | undefined;
        if (opts.controlPlaneCa) {
          try {
            controlPlaneCa = readFileSync(opts.controlPlaneCa, 'utf8');
          } catch (err) {
            throw new Error(`--control-plane-ca ${opts.controlPlaneCa} cannot be read: ${(err as Error).message}`);
          }
          if (!controlPlaneCa.includes('-----BEGIN CERTIFICATE-----'))
            throw new Error(`--control-plane-ca ${opts.controlPlaneCa} is not a PEM certificate file`);
        }
        const reg = await registerWithControlPlane({
          controlPlaneUrl: opts.controlPlane,
          agentUrl,
          agentSecret: agent.secret,
          ...(agent.tls ? { agentTlsCert: agent.tls.certPem } : {}),
          ...(controlPlaneCa ? { controlPlaneCa } : {}),
          hostId: agent.hostId,
          runtimes: agent.manager.runtimeNames(),
          stateFile: join(opts.dataDir ?? '/var/lib/wrenn', 'registration.json'),
          ...(opts.token ? { token: opts.token } : {}),
        });
        process.stderr.write(
          `registered with ${opts.controlPlane} as ${reg.hostId}${reg.reused ? ' (remembered)' : ''}\n`,
        );
      },
    });
  });

/** What `up` and `server` share after --listen: where data lives, the domain, and HTTPS. */
function withControlPlaneOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--data-dir <dir>', 'data directory').default('/var/lib/wrenn').env('WRENN_DIR'))
    .addOption(new Option('--domain <domain>', 'domain for proxy host names').default('localhost').env('WRENN_DOMAIN'))
    .addOption(
      new Option('--tls <mode>', 'serve HTTPS with a local CA made under the data dir')
        .choices(['self-signed'])
        .env('WRENN_TLS'),
    )
    .addOption(
      new Option('--tls-cert <file>', 'serve HTTPS with this PEM certificate (*.<domain> and api.<domain>)').env(
        'WRENN_TLS_CERT',
      ),
    )
    .addOption(new Option('--tls-key <file>', 'the PEM key of --tls-cert').env('WRENN_TLS_KEY'));
}

withControlPlaneOptions(
  program
    .command('up')
    .description('run the whole system on this machine: control plane, host agent, embedded database')
    .addOption(
      new Option('--listen <addr>', 'host:port of the API, proxy and dashboard')
        .default('127.0.0.1:8000')
        .env('WRENN_LISTEN'),
    ),
)
  .addOption(
    new Option('--warm-pool <spec>', 'ready capsules kept per template, e.g. minimal=2')
      .default('minimal=2')
      .env('WRENN_WARM_POOL'),
  )
  .action(async (opts: Record<string, string | undefined>) => {
    const { runUpFromCli } = await import('./commands/serve.js');
    await runUpFromCli(opts);
  });

withControlPlaneOptions(
  program
    .command('server')
    .description('run the control plane alone (agents register with it)')
    .addOption(new Option('--listen <addr>', 'host:port of the API').default('127.0.0.1:8000').env('WRENN_LISTEN')),
).action(async (opts: Record<string, string | undefined>) => {
  const { runServerFromCli } = await import('./commands/serve.js');
  await runServerFromCli(opts);
});

registerUserCommands(program);

function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`--port must be a whole number from 0 to 65535 (0 picks a free port), got "${value}"`);
  }
  return port;
}

class UsageError extends Error {}

program.parseAsync(process.argv).catch((err: unknown) => {
  const debug = program.opts().debug || process.argv.includes('--debug');
  if (debug && err instanceof Error) console.error(err.stack);
  else console.error(`wrenn: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
