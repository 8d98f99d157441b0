// `wrenn capsule network <id>`: shows a capsule's egress policy, or replaces it (allow beats deny;
// the server judges the entries and says which one is wrong).
import { Capsule } from '@wrenn/sdk';
import { CliError, connection, printJson, run } from './support.js';

export interface NetworkOpts {
  allowOut?: string[];
  denyOut?: string[];
  clear?: boolean;
  json?: boolean;
}

export const network = (id: string, o: NetworkOpts) =>
  run(async () => {
    if (o.clear && (o.allowOut || o.denyOut)) throw new CliError('--clear takes no --allow-out or --deny-out');
    const c = await Capsule.connect(id, connection());
    const p =
      o.clear || o.allowOut || o.denyOut
        ? await c.setNetwork({ allowOut: o.allowOut ?? [], denyOut: o.denyOut ?? [] })
        : await c.getNetwork();
    if (o.json) return printJson({ allow_out: p.allowOut, deny_out: p.denyOut, rule_domains: Object.keys(p.rules) });
    const line = (k: string, v: string[]) => `${`${k}:`.padEnd(10)} ${v.join(', ') || '-'}`;
    process.stdout.write(
      `${[line('allow out', p.allowOut), line('deny out', p.denyOut), line('rules', Object.keys(p.rules))].join('\n')}\n`,
    );
  });
