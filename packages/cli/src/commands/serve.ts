// `wrenn up` (the whole system on this machine) and `wrenn server` (a control plane alone).
import type { TlsSource } from '@wrenn/control-plane';
import { parseListen, parseWarmPool } from '@wrenn/host-agent';

/** --tls self-signed, or --tls-cert with --tls-key; undefined: plain HTTP. */
export function tlsSourceOf(opts: Record<string, string | undefined>): TlsSource | undefined {
  const { tls, tlsCert, tlsKey } = opts;
  if (tls !== undefined && (tlsCert !== undefined || tlsKey !== undefined))
    throw new Error('give either --tls self-signed or --tls-cert/--tls-key, not both');
  if (tls !== undefined) {
    if (tls !== 'self-signed') throw new Error(`--tls takes "self-signed", got "${tls}"`);
    return 'self-signed';
  }
  if ((tlsCert === undefined) !== (tlsKey === undefined)) throw new Error('--tls-cert and --tls-key go together');
  return tlsCert !== undefined && tlsKey !== undefined ? { certFile: tlsCert, keyFile: tlsKey } : undefined;
}

/** How the e2b SDK reaches this deployment: E2B_DOMAIN over TLS, else the two URLs. */
function e2bSettings(url: string, domain: string, tls: boolean, caFile: string | undefined, key: string): string {
  if (!tls) return `E2B_API_URL=${url} E2B_SANDBOX_URL=${url} E2B_API_KEY=${key}`;
  const ca = caFile ? ` NODE_EXTRA_CA_CERTS=${caFile}` : '';
  return `E2B_DOMAIN=${domain} E2B_API_KEY=${key}${ca}  (DNS: api.${domain} and *.${domain} → this listener, port 443)`;
}

export async function runUpFromCli(opts: Record<string, string | undefined>): Promise<void> {
  if (process.getuid?.() !== 0)
    throw new Error('`wrenn up` runs a host agent, which needs root (namespaces, cgroups, network); run it with sudo');
  const { startUp } = await import('../up.js');
  const { e2bKeyOf } = await import('@wrenn/control-plane');
  const dataDir = opts.dataDir ?? '/var/lib/wrenn';
  const tls = tlsSourceOf(opts);
  const domain = opts.domain ?? 'localhost';
  const up = await startUp({
    dataDir,
    listen: parseListen(opts.listen ?? '127.0.0.1:8000'),
    domain,
    ...(tls ? { tls } : {}),
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
    `  e2b SDK:     ${e2bSettings(up.url, domain, tls !== undefined, up.cp.caFile, e2bKeyOf(up.adminKey))}`,
    ...(up.cp.caFile ? [`  trust CA:    ${up.cp.caFile}`] : []),
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
  const tls = tlsSourceOf(opts);
  const domain = opts.domain ?? 'localhost';
  const cp = await startControlPlane({
    listen,
    dataDir,
    domain,
    publicUrl: `${tls ? 'https' : 'http'}://${listen.host}:${listen.port}`,
    ...(tls ? { tls } : {}),
    ...(process.env.DATABASE_URL ? { databaseUrl: process.env.DATABASE_URL } : {}),
    readyWithHosts: true,
  });
  const admin = await ensureAdmin({
    db: cp.ctx.database.db,
    dataDir,
    ...(process.env.WRENN_API_KEY ? { envKey: process.env.WRENN_API_KEY } : {}),
  });
  process.stderr.write(
    `Wrenn control plane at ${cp.url}; admin key ${admin.apiKey} (e2b SDK: ${e2bSettings(cp.url, domain, tls !== undefined, cp.caFile, e2bKeyOf(admin.apiKey))}); agents join with \`wrenn agent --control-plane ${joinUrl(cp.url, domain, cp.caFile)} --token <token>${cp.caFile ? ` --control-plane-ca ${cp.caFile}` : ''}\`\n`,
  );
  const stop = () => void cp.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

/** The URL agents register at: with the local CA, the name its certificate carries (api.<domain>), on the same port. */
function joinUrl(url: string, domain: string, caFile: string | undefined): string {
  if (!caFile) return url;
  const u = new URL(url);
  return `https://api.${domain}${u.port ? `:${u.port}` : ''}`;
}
