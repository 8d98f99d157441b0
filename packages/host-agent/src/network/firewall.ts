// Host firewall for capsules, with iptables (the nf_tables backend on Debian 12).
//
// Why iptables and not a private nft table: a packet must be accepted by every base chain on a
// hook, so a host that also runs Docker (FORWARD policy DROP in iptables' filter table) would drop
// capsule traffic that only our own nft table accepted. Jumping from the standard chains into our
// own chains works next to Docker, ufw and friends, and `iptables -S` shows it to operators.
//
// Everything lives in chains named <P>-* (P = WRENN by default), hooked once from the standard
// chains, so removing them is exact. Rules match capsule interfaces by their name prefix ("wr+"),
// and a capsule's internet switch is its address's membership in one of two ipsets (<P>-INET,
// <P>-NOINET; hash tables, with per-address counters): no rule changes per capsule, so neither a
// packet's path through the chains nor a create's `ipset restore` grows with the number of
// capsules (one rule per capsule made both O(capsules): at 1,000 capsules every iptables-restore
// re-read 1,000 rules, 15 ms of CPU, and every forwarded packet walked them). The capsule's source
// address stands for its interface: rp_filter=1 on every host-side veth drops a packet whose
// source is not the capsule's own. Only allowOut entries of the few capsules that have some are
// rules, in <P>-ALLOW and <P>-OPENED. Destinations that are not global
// (egress-policy.ts) are closed by a fixed list of static rules in <P>-OUT, whatever the number of
// capsules, and refused with a TCP reset or ICMP admin-prohibited, so a capsule fails fast.

import { existsSync } from 'node:fs';
import { NON_GLOBAL_V4 } from './egress-policy.js';
import { type ExecResult, run, runOk } from './exec.js';
import { Mutex } from './mutex.js';

export interface FirewallNames {
  chainPrefix: string; // WRENN
  ifPrefix: string; // wr
}

export interface FirewallConfig extends FirewallNames {
  pool: string; // 10.201.0.0/16
  /** Capsules the pool holds (the sets' maxelem). */
  slots: number;
  metadataPort: number; // where the host agent's metadata server listens
  /** IPv4 name servers of the capsules' resolv.conf: port 53 to these stays open. */
  dnsServers: readonly string[];
  /** Non-global ranges open to every capsule of this host (WRENN_EGRESS_ALLOW_CIDRS). */
  allowCidrs: readonly string[];
  /** The egress proxy's ports on the host (plain HTTP, TLS): capsules with domain rules reach them. */
  proxyPorts: { http: number; tls: number };
}

export interface EgressRule {
  id: string;
  ifname: string;
  /** The capsule's address (its source address, enforced by rp_filter on its veth). */
  ip: string;
  internet: boolean;
  /** Destinations accepted even with the internet switch off (normalised CIDRs). */
  allowOut: readonly string[];
  /** The allowOut entries inside closed ranges that the operator lets capsules open. */
  opened: readonly string[];
  /** Destinations refused (allowOut beats them; 0.0.0.0/0 refuses all the rest). */
  denyOut: readonly string[];
  /** TCP to ports 80/443 (but to allowOut CIDRs) goes to the egress proxy, DNS to the name servers stays open. */
  proxied: boolean;
}

export const METADATA_IP = '169.254.169.254';

/** The ipsets of capsule addresses with the internet switch on and off. */
export function sets(p: string) {
  return { inet: `${p}-INET`, noinet: `${p}-NOINET` };
}

/** Kernels built without IPv6 have no ip6tables tables (and capsules no IPv6 to block). */
const HAS_IPV6 = existsSync('/proc/sys/net/ipv6');

export function chains(p: string) {
  return {
    in: `${p}-IN`,
    fwd: `${p}-FWD`,
    egress: `${p}-EGRESS`,
    allow: `${p}-ALLOW`,
    deny: `${p}-DENY`,
    proxy: `${p}-PROXY`,
    pre: `${p}-PRE`,
    post: `${p}-POST`,
    out: `${p}-OUT`,
    closed: `${p}-CLOSED`,
    opened: `${p}-OPENED`,
    refuse: `${p}-REFUSE`,
  };
}

/**
 * The rules of one capsule: its opened closed ranges (in OPENED), its allowOut entries (in ALLOW),
 * its denyOut entries (in DENY) and, with domain rules, the redirect of its web traffic to the
 * egress proxy (nat PROXY); none for most capsules. Added and deleted together, keyed by interface.
 */
function capsuleLines(
  op: '-A' | '-D',
  ch: ReturnType<typeof chains>,
  r: EgressRule,
  c: Pick<FirewallConfig, 'dnsServers' | 'proxyPorts'>,
): { filter: string[]; nat: string[] } {
  const m = `-i ${r.ifname} -m comment --comment "wrenn:${r.id}:allow"`;
  const dns = r.proxied
    ? c.dnsServers.flatMap((s) =>
        ['udp', 'tcp'].map((p) => `${op} ${ch.allow} ${m} -d ${s}/32 -p ${p} -m ${p} --dport 53 -j ACCEPT`),
      )
    : [];
  return {
    filter: [
      ...r.opened.map((d) => `${op} ${ch.opened} ${m} -d ${d} -j ACCEPT`),
      ...r.allowOut.map((d) => `${op} ${ch.allow} ${m} -d ${d} -j ACCEPT`),
      ...dns,
      ...r.denyOut.map((d) => `${op} ${ch.deny} ${m} -d ${d} -j ${ch.refuse}`),
    ],
    nat: r.proxied
      ? [
          ...r.allowOut.map((d) => `${op} ${ch.proxy} ${m} -d ${d} -j RETURN`),
          `${op} ${ch.proxy} ${m} -p tcp -m tcp --dport 80 -j REDIRECT --to-ports ${c.proxyPorts.http}`,
          `${op} ${ch.proxy} ${m} -p tcp -m tcp --dport 443 -j REDIRECT --to-ports ${c.proxyPorts.tls}`,
        ]
      : [],
  };
}

/** `ipset restore` lines that put capsule `r` in the set of its internet switch (and out of the other). */
function setLines(op: 'add' | 'del', st: ReturnType<typeof sets>, r: EgressRule): string[] {
  if (op === 'del') return [`del ${st.inet} ${r.ip} -exist`, `del ${st.noinet} ${r.ip} -exist`];
  return [
    `del ${r.internet ? st.noinet : st.inet} ${r.ip} -exist`,
    `add ${r.internet ? st.inet : st.noinet} ${r.ip} -exist`,
  ];
}

const eq = (x: readonly string[], y: readonly string[]) => x.length === y.length && x.every((v, i) => v === y[i]);

function sameRules(a: EgressRule, b: EgressRule): boolean {
  return (
    a.id === b.id &&
    eq(a.allowOut, b.allowOut) &&
    eq(a.opened, b.opened) &&
    eq(a.denyOut, b.denyOut) &&
    a.proxied === b.proxied
  );
}

function sameSet(a: EgressRule, b: EgressRule): boolean {
  return a.ip === b.ip && a.internet === b.internet;
}

/** The ruleset of the shared chains (the per-capsule rules come from egressRules). */
export function baseRules(c: FirewallConfig, egress: readonly EgressRule[]): { v4: string; v6: string } {
  const ch = chains(c.chainPrefix);
  const w = `${c.ifPrefix}+`;
  const v4 = [
    '*filter',
    `:${ch.in} - [0:0]`,
    `:${ch.fwd} - [0:0]`,
    `:${ch.egress} - [0:0]`,
    `:${ch.allow} - [0:0]`,
    `:${ch.deny} - [0:0]`,
    `:${ch.out} - [0:0]`,
    `:${ch.closed} - [0:0]`,
    `:${ch.opened} - [0:0]`,
    `:${ch.refuse} - [0:0]`,
    // A refusal the capsule sees at once: a TCP reset, or ICMP admin-prohibited for the rest.
    `-A ${ch.refuse} -p tcp -j REJECT --reject-with tcp-reset`,
    `-A ${ch.refuse} -j REJECT --reject-with icmp-admin-prohibited`,
    // Capsule -> host (any of its addresses: they are all local): only replies to connections the
    // host opened, the name servers if the host is one, and the metadata server reached through
    // the REDIRECT below (ctstate DNAT); never the agent or any other service.
    `-A ${ch.in} -i ${w} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT`,
    ...[c.metadataPort, c.proxyPorts.http, c.proxyPorts.tls].map(
      (port) => `-A ${ch.in} -i ${w} -p tcp -m tcp --dport ${port} -m conntrack --ctstate DNAT -j ACCEPT`,
    ),
    ...dnsLines(ch.in, w, c.dnsServers, 'ACCEPT'),
    `-A ${ch.in} -i ${w} -j ${ch.refuse}`,
    // The metadata server and the egress proxy listen on all addresses; nobody but capsules may use them.
    ...[c.metadataPort, c.proxyPorts.http, c.proxyPorts.tls].map(
      (port) => `-A ${ch.in} -p tcp -m tcp --dport ${port} -j DROP`,
    ),
    // Forwarding: into a capsule only replies (this also stops capsule -> capsule); out of a
    // capsule only to global destinations (OUT) and when its switches in EGRESS say so.
    `-A ${ch.fwd} -o ${w} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT`,
    `-A ${ch.fwd} -o ${w} -j DROP`,
    // (RELATED packets are checked too: an ICMP error's outer destination is the capsule's choice.)
    `-A ${ch.fwd} -i ${w} -m conntrack ! --ctstate ESTABLISHED -j ${ch.out}`,
    `-A ${ch.fwd} -i ${w} -j ${ch.egress}`,
    `-A ${ch.fwd} -i ${w} -j DROP`,
    // OUT, for all but established connections (checked at their first packet): the name servers
    // and what the host opened go on to EGRESS, closed ranges to CLOSED.
    ...dnsLines(ch.out, w, c.dnsServers, 'RETURN'),
    ...c.allowCidrs.map((d) => `-A ${ch.out} -d ${d} -j RETURN`),
    ...NON_GLOBAL_V4.map((d) => `-A ${ch.out} -d ${d} -j ${ch.closed}`),
    // CLOSED: a capsule's own opened ranges (OPENED accepts them), else refused.
    `-A ${ch.closed} -j ${ch.opened}`,
    `-A ${ch.closed} -j ${ch.refuse}`,
    ...egressLines(c.chainPrefix),
    ...egress.flatMap((r) => capsuleLines('-A', ch, r, c).filter),
    'COMMIT',
    '*nat',
    `:${ch.pre} - [0:0]`,
    `:${ch.post} - [0:0]`,
    `:${ch.proxy} - [0:0]`,
    // The metadata address: REDIRECT rewrites it to the host side of the capsule's own veth.
    `-A ${ch.pre} -i ${w} -d ${METADATA_IP}/32 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports ${c.metadataPort}`,
    // Web traffic of capsules with domain rules: to the egress proxy (the same REDIRECT).
    `-A ${ch.pre} -i ${w} -j ${ch.proxy}`,
    ...egress.flatMap((r) => capsuleLines('-A', ch, r, c).nat),
    `-A ${ch.post} -s ${c.pool} ! -o ${w} -j MASQUERADE`,
    'COMMIT',
    '',
  ].join('\n');
  // No IPv6 for capsules: host sides have IPv6 disabled, and these rules catch any leftover path.
  const v6 = [
    '*filter',
    `:${ch.in} - [0:0]`,
    `:${ch.fwd} - [0:0]`,
    `-A ${ch.in} -i ${w} -j DROP`,
    `-A ${ch.fwd} -i ${w} -j DROP`,
    `-A ${ch.fwd} -o ${w} -j DROP`,
    'COMMIT',
    '',
  ].join('\n');
  return { v4, v6 };
}

/** EGRESS: a capsule's allowOut entries (ALLOW), its denyOut entries (DENY), then its internet switch (which set it is in). */
function egressLines(p: string): string[] {
  const ch = chains(p);
  const st = sets(p);
  return [
    `-A ${ch.egress} -j ${ch.allow}`,
    `-A ${ch.egress} -j ${ch.deny}`,
    `-A ${ch.egress} -m set --match-set ${st.inet} src -j ACCEPT`,
    `-A ${ch.egress} -m set --match-set ${st.noinet} src -j DROP`,
  ];
}

/**
 * `ipset restore` input that makes both sets hold exactly the capsules of `egress`: each is
 * filled as a temporary set and swapped in, so no capsule's switch is ever briefly empty.
 */
export function setsRestore(p: string, egress: readonly EgressRule[], maxelem: number): string {
  const st = sets(p);
  const create = (name: string) => `create ${name} hash:ip family inet counters maxelem ${maxelem} -exist`;
  return [
    ...[st.inet, st.noinet].flatMap((set) => [
      create(set),
      create(`${set}-T`),
      `flush ${set}-T`,
      ...egress.filter((r) => (set === st.inet) === r.internet).map((r) => `add ${set}-T ${r.ip} -exist`),
      `swap ${set}-T ${set}`,
      `destroy ${set}-T`,
    ]),
    '',
  ].join('\n');
}

async function ipsetRestore(input: string, what: string): Promise<void> {
  await runOk('ipset', ['restore'], input, what);
}

function dnsLines(chain: string, w: string, servers: readonly string[], target: string): string[] {
  return servers.flatMap((s) =>
    ['udp', 'tcp'].map((p) => `-A ${chain} -i ${w} -d ${s}/32 -p ${p} -m ${p} --dport 53 -j ${target}`),
  );
}

const HOOKS: ReadonlyArray<{ table: string; chain: string; target: keyof ReturnType<typeof chains>; v6: boolean }> = [
  { table: 'filter', chain: 'INPUT', target: 'in', v6: true },
  { table: 'filter', chain: 'FORWARD', target: 'fwd', v6: true },
  { table: 'nat', chain: 'PREROUTING', target: 'pre', v6: false },
  { table: 'nat', chain: 'POSTROUTING', target: 'post', v6: false },
];

/**
 * iptables-restore, retried a few times when another process's transaction got in the way
 * (nf_tables generation changes, the xtables lock); other failures are returned at once.
 */
async function restore(cmd: 'iptables-restore' | 'ip6tables-restore', input: string): Promise<ExecResult> {
  for (let attempt = 1; ; attempt++) {
    const r = await run(cmd, ['-w', '--noflush'], input);
    if (r.code === 0 || attempt === 4 || !/temporarily unavailable|try again|resource busy|lock/i.test(r.stderr))
      return r;
    await new Promise((res) => setTimeout(res, 10 * attempt));
  }
}

async function restoreOk(cmd: 'iptables-restore' | 'ip6tables-restore', input: string, what: string): Promise<void> {
  const r = await restore(cmd, input);
  if (r.code !== 0) throw new Error(`${what}: ${cmd} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
}

/** Lines of `iptables-save` in a table: [table] -> lines. */
async function save(cmd: string): Promise<Map<string, string[]>> {
  const out = await runOk(cmd, [], '', 'reading the firewall');
  const tables = new Map<string, string[]>();
  let cur: string[] = [];
  for (const line of out.split('\n')) {
    if (line.startsWith('*')) tables.set(line.slice(1), (cur = []));
    else cur.push(line);
  }
  return tables;
}

export class Firewall {
  private readonly ch: ReturnType<typeof chains>;
  private readonly st: ReturnType<typeof sets>;
  /** Serialises every write to our chains. */
  private readonly lock = new Mutex();
  /** Sets and allowOut rules as they are in the kernel (by interface), known since the last full rewrite. */
  private installed = new Map<string, EgressRule>();
  private dirty = new Set<string>();
  private waiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  private flushing = false;

  constructor(
    private readonly cfg: FirewallConfig,
    /** The per-capsule rules as they should be now (one per interface). */
    private readonly desired: () => EgressRule[],
  ) {
    this.ch = chains(cfg.chainPrefix);
    this.st = sets(cfg.chainPrefix);
  }

  /** (Re)writes all our chains from scratch and hooks them into the standard chains once. */
  async install(): Promise<void> {
    await this.lock.runExclusive(async () => {
      const snapshot = this.desired();
      const { v4, v6 } = baseRules(this.cfg, snapshot);
      // The sets first: the rules name them.
      await ipsetRestore(
        setsRestore(this.cfg.chainPrefix, snapshot, this.maxelem()),
        'installing the capsule address sets',
      );
      await restoreOk('iptables-restore', v4, 'installing the capsule firewall');
      this.installed = new Map(snapshot.map((r) => [r.ifname, r]));
      if (HAS_IPV6) await restoreOk('ip6tables-restore', v6, 'installing the capsule IPv6 firewall');
      for (const [cmd, v6only] of [
        ['iptables-save', false],
        ['ip6tables-save', true],
      ] as const) {
        if (v6only && !HAS_IPV6) continue;
        const tables = await save(cmd);
        const add: Record<string, string[]> = {};
        for (const h of HOOKS) {
          if (v6only && !h.v6) continue;
          const jump = `-A ${h.chain} -j ${this.ch[h.target]}`;
          if (!(tables.get(h.table) ?? []).includes(jump))
            (add[h.table] ??= []).push(`-I ${h.chain} 1 -j ${this.ch[h.target]}`);
        }
        const text = Object.entries(add)
          .map(([t, lines]) => `*${t}\n${lines.join('\n')}\nCOMMIT\n`)
          .join('');
        if (text) {
          await restoreOk(v6only ? 'ip6tables-restore' : 'iptables-restore', text, 'hooking the capsule firewall');
        }
      }
    });
  }

  /** Removes our hooks and chains (all capsules lose their firewall: for uninstall and tests). */
  async uninstall(): Promise<void> {
    await this.lock.runExclusive(async () => {
      for (const [cmd, restoreCmd] of [
        ['iptables-save', 'iptables-restore'],
        ['ip6tables-save', 'ip6tables-restore'],
      ] as const) {
        if (cmd === 'ip6tables-save' && !HAS_IPV6) continue;
        const tables = await save(cmd);
        let text = '';
        const ours = Object.values(this.ch);
        for (const [table, lines] of tables) {
          const present = ours.filter((c) => lines.some((l) => l.startsWith(`:${c} `)));
          const hooks = lines.filter(
            (l) =>
              /^-A (INPUT|FORWARD|OUTPUT|PREROUTING|POSTROUTING) -j /.test(l) &&
              ours.some((c) => l.endsWith(`-j ${c}`)),
          );
          if (present.length === 0 && hooks.length === 0) continue;
          text += `*${table}\n`;
          text += hooks.map((l) => `${l.replace(/^-A /, '-D ')}\n`).join('');
          text += present.map((c) => `-F ${c}\n`).join('') + present.map((c) => `-X ${c}\n`).join('');
          text += 'COMMIT\n';
        }
        if (text) await restoreOk(restoreCmd, text, 'removing the capsule firewall');
      }
      // No rule names the sets any more.
      const names = new Set((await runOk('ipset', ['list', '-n'], '', 'listing ipsets')).split('\n'));
      const ours = Object.values(sets(this.cfg.chainPrefix))
        .flatMap((n) => [n, `${n}-T`])
        .filter((n) => names.has(n));
      if (ours.length)
        await ipsetRestore(ours.map((n) => `destroy ${n}\n`).join(''), 'removing the capsule address sets');
      this.installed.clear();
    });
  }

  private maxelem(): number {
    return Math.max(65536, this.cfg.slots);
  }

  /**
   * Brings the set membership and allowOut rules of `ifname` in line with desired() (adds,
   * replaces or removes them).
   * Edits are coalesced: while one iptables-restore runs, later ones queue up and go out together,
   * so 50 concurrent creates cost a handful of spawns. Rules are keyed by interface, so an edit
   * that a full rewrite already covered emits nothing: no duplicates, whatever the interleaving.
   */
  sync(ifname: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.dirty.add(ifname);
      this.waiters.push({ resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.waiters.length > 0) {
        const waiters = this.waiters;
        const dirty = this.dirty;
        this.waiters = [];
        this.dirty = new Set();
        let err: Error | undefined;
        await this.lock.runExclusive(async () => {
          const want = new Map(this.desired().map((r) => [r.ifname, r]));
          const lines: string[] = [];
          const natLines: string[] = [];
          const members: string[] = [];
          const edit = (op: '-A' | '-D', r: EgressRule) => {
            const l = capsuleLines(op, this.ch, r, this.cfg);
            lines.push(...l.filter);
            natLines.push(...l.nat);
          };
          for (const ifname of dirty) {
            const cur = this.installed.get(ifname);
            const next = want.get(ifname);
            if (!(cur && next && sameRules(cur, next))) {
              if (cur) edit('-D', cur);
              if (next) edit('-A', next);
            }
            if (!(cur && next && sameSet(cur, next))) {
              if (cur) members.push(...setLines('del', this.st, cur));
              if (next) members.push(...setLines('add', this.st, next));
            }
          }
          if (lines.length === 0 && natLines.length === 0 && members.length === 0) return;
          // Rules first (an allowOut entry is in place before the capsule's address is let through).
          const text =
            (lines.length ? `*filter\n${lines.join('\n')}\nCOMMIT\n` : '') +
            (natLines.length ? `*nat\n${natLines.join('\n')}\nCOMMIT\n` : '');
          const r = text ? await restore('iptables-restore', text) : { code: 0 };
          const s =
            r.code === 0 && members.length ? await run('ipset', ['restore'], `${members.join('\n')}\n`) : { code: 0 };
          if (r.code === 0 && s.code === 0) {
            for (const ifname of dirty) {
              const next = want.get(ifname);
              if (next) this.installed.set(ifname, next);
              else this.installed.delete(ifname);
            }
            return;
          }
          // Someone changed our chains or sets behind our back: rebuild them from the desired state.
          try {
            await this.rewriteEgressLocked();
          } catch (e) {
            err = e as Error;
          }
        });
        for (const w of waiters) err ? w.reject(err) : w.resolve();
      }
    } finally {
      this.flushing = false;
    }
  }

  private async rewriteEgressLocked(): Promise<void> {
    const snapshot = this.desired();
    const per = snapshot.map((r) => capsuleLines('-A', this.ch, r, this.cfg));
    const lines = [...egressLines(this.cfg.chainPrefix), ...per.flatMap((l) => l.filter)].map((l) => `${l}\n`).join('');
    const natLines = per
      .flatMap((l) => l.nat)
      .map((l) => `${l}\n`)
      .join('');
    await ipsetRestore(
      setsRestore(this.cfg.chainPrefix, snapshot, this.maxelem()),
      'rewriting the capsule address sets',
    );
    const text =
      `*filter\n:${this.ch.egress} - [0:0]\n:${this.ch.allow} - [0:0]\n:${this.ch.deny} - [0:0]\n` +
      `:${this.ch.opened} - [0:0]\n${lines}COMMIT\n*nat\n:${this.ch.proxy} - [0:0]\n${natLines}COMMIT\n`;
    await restoreOk('iptables-restore', text, 'rewriting the capsule egress rules');
    this.installed = new Map(snapshot.map((r) => [r.ifname, r]));
  }

  /**
   * Packet/byte counters of a capsule's internet switch: its address's entry in the set it is in
   * (what the switch let through, or dropped). Lists the set: for tests and diagnostics.
   */
  async egressCounters(id: string): Promise<{ action: 'ACCEPT' | 'DROP'; packets: number; bytes: number } | undefined> {
    const r = this.desired().find((x) => x.id === id);
    if (!r) return undefined;
    const set = r.internet ? this.st.inet : this.st.noinet;
    const out = await runOk('ipset', ['list', set], '', 'reading firewall counters');
    for (const line of out.split('\n')) {
      const m = /^(\S+) packets (\d+) bytes (\d+)/.exec(line);
      if (m && m[1] === r.ip)
        return { action: r.internet ? 'ACCEPT' : 'DROP', packets: Number(m[2]), bytes: Number(m[3]) };
    }
    return undefined;
  }
}
