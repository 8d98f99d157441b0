// `wrenn up` (the whole system on this machine) and `wrenn server` (a control plane alone).
import { parseListen, parseWarmPool } from '@wrenn/host-agent';

export async function runUpFromCli(opts: Record<string, string | undefined>): Promise<void> {
  if (process.getuid?.() !== 0)
    throw new Error('`wrenn up` runs a host agent, which needs root (namespaces, cgroups, network); run it with sudo');
  const { startUp } = await import('../up.js');
  const { e2bKeyOf } = await import('@wrenn/control-plane');
  const dataDir = opts.dataDir ?? '/var/lib/wrenn';
  const up = await startUp({
    dataDir,
    listen: parseListen(opts.listen ?? '127.0.0.1:8000'),
    domain: opts.domain ?? 'localhost',
    warmPool: parseWarmPool(opts.warmPool),
    ...(process.env.DATABASE_URL ? { databaseUrl: process.env.DATABASE_URL } : {}),
    ...(process.env.WRENN_API_KEY ? { adminKey: process.env.WRENN_API_KEY } : {}),
    onProgress: (line) => process.stderr.write(`[wrenn] ${line}\n`),
  });
  const lines = [
    '',
    `Wrenn is running at ${up.url}`,
    `  dashboard:   ${up.url}/`,
    `  API docs:    ${up.url}/docs`,
    `  test page:   ${up.url}/test`,
    `  admin key:   ${up.adminKey}${up.adminKeyCreated ? `  (new; also in ${up.adminKeyFile})` : ''}`,
    // The admin key's E2B form: the e2b SDKs' own key check wants 'e2b_' and hex.
    `  e2b SDK:     E2B_API_URL=${up.url} E2B_SANDBOX_URL=${up.url} E2B_API_KEY=${e2bKeyOf(up.adminKey)}`,
    '',
  ];
  process.stderr.write(`${lines.join('\n')}\n`);
  const stop = () => {
    void up.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

export async function runServerFromCli(opts: Record<string, string | undefined>): Promise<void> {
  const { startControlPlane, ensureAdmin, e2bKeyOf } = await import('@wrenn/control-plane');
  const listen = parseListen(opts.listen ?? '127.0.0.1:8000');
  const dataDir = opts.dataDir ?? '/var/lib/wrenn';
  const cp = await startControlPlane({
    listen,
    dataDir,
    domain: opts.domain ?? 'localhost',
    publicUrl: `http://${listen.host}:${listen.port}`,
    ...(process.env.DATABASE_URL ? { databaseUrl: process.env.DATABASE_URL } : {}),
  });
  const admin = await ensureAdmin({
    db: cp.ctx.database.db,
    dataDir,
    ...(process.env.WRENN_API_KEY ? { envKey: process.env.WRENN_API_KEY } : {}),
  });
  process.stderr.write(
    `Wrenn control plane at ${cp.url}; admin key ${admin.apiKey} (for the e2b SDK: ${e2bKeyOf(admin.apiKey)}); agents join with \`wrenn agent --control-plane ${cp.url} --token <token>\`\n`,
  );
  const stop = () => void cp.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
