// The per-capsule network of this host: slot allocation, namespace + veth, firewall rules and the
// values the metadata endpoint serves. One instance per agent (see index.ts for the default one).

import { networkInterfaces } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { rootCertificates } from 'node:tls';
import {
  type EgressPolicy,
  egressPolicyProblem,
  type NetworkRule,
  normaliseDenyOut,
  splitAllowOut,
} from '@wrenn/protocol';
import { type AddressPool, parsePool, SLOT_PREFIX_LEN, slotAddresses, slotOfCapsuleIp } from './address-pool.js';
import {
  type Cidr,
  checkAllowOut,
  cidrWithin,
  nonGlobalRangeOf,
  openedEntries,
  parseCidr,
  parseCidrList,
} from './egress-policy.js';
import type { EgressCa } from './egress-proxy/egress-ca.js';
import {
  closeEgressConnections,
  type EgressProxy,
  type EgressProxyOptions,
  startEgressProxy,
} from './egress-proxy/server.js';
import { type EgressRule, Firewall } from './firewall.js';
import { createLinks, enableIpForwarding, listHostIfnames, listNetns, prepareNetnsDir, removeLinks } from './links.js';
import { hostNameServers } from './name-servers.js';
import { type SlotRecord, SlotStore } from './slot-store.js';

export interface NetworkNames {
  /** Network namespaces are /run/netns/<netnsPrefix><id>. */
  netnsPrefix: string;
  /** Host sides of veths are <ifPrefix><slot>; every interface named so belongs to us. */
  ifPrefix: string;
  /** iptables chains are <chainPrefix>-IN, -FWD, -EGRESS, -PRE, -POST. */
  chainPrefix: string;
}

export const DEFAULT_NAMES: NetworkNames = { netnsPrefix: 'wrenn-', ifPrefix: 'wr', chainPrefix: 'WRENN' };
export const DEFAULT_POOL = '10.201.0.0/16';
export const DEFAULT_RATE_MBIT = 200;
export const DEFAULT_TXQUEUELEN = 5000;
export const DEFAULT_METADATA_PORT = 50169;

export interface NetworkOptions {
  dataDir: string;
  /** Default: WRENN_NET_POOL or 10.201.0.0/16. */
  pool?: string;
  /** Default capsule egress rate. Default: WRENN_NET_RATE_MBIT or 200 (0 = unlimited). */
  rateMbit?: number;
  txqueuelen?: number;
  /** Port of the metadata server on the host. Default: WRENN_METADATA_PORT or 50169. */
  metadataPort?: number;
  names?: NetworkNames;
  /**
   * Networks kept pre-built so a create only claims one and adds its firewall rule. Refilled in
   * the background after each claim. Default: WRENN_NET_WARM_POOL or 0.
   */
  warmPool?: number;
  /** Closed (non-global) ranges open to every capsule. Default: WRENN_EGRESS_ALLOW_CIDRS or none. */
  egressAllow?: string[];
  /** Closed ranges a capsule may open for itself with allowOut. Default: WRENN_EGRESS_OPENABLE_CIDRS or none. */
  egressOpenable?: string[];
  /** Name servers capsules use (port 53 to them stays open). Default: the host's, minus loopback. */
  dnsServers?: string[];
  /**
   * The egress proxy's plain-HTTP port on the host (TLS: the next one), where capsules with domain
   * rules have ports 80/443 redirected. Default: WRENN_EGRESS_PROXY_PORT or the metadata port + 1 (50170).
   */
  egressProxyPort?: number;
  /** CAs (PEM) the egress proxy trusts besides Node's when it re-sends HTTPS (rules); for tests and private CAs. */
  egressUpstreamCa?: string[];
}

/** What the egress proxy needs to know about the capsule behind a source address. */
export interface CapsuleEgress {
  id: string;
  internet: boolean;
  /** allowOut CIDRs (normalised). */
  allowCidrs: string[];
  /** allowOut domains and *.domain patterns. */
  domains: string[];
  denyOut: string[];
  rules: Record<string, NetworkRule[]>;
}

export interface CapsuleNetwork {
  id: string;
  slot: number;
  netnsName: string;
  netnsPath: string;
  hostIfname: string;
  hostIp: string; // also the capsule's gateway
  capsuleIp: string; // envd is at capsuleIp:49983
  prefixLen: number;
  internet: boolean;
  /** Destinations the capsule may reach whatever denyOut and internet say (normalised CIDRs and domains). */
  allowOut: string[];
  denyOut: string[];
  rules: Record<string, NetworkRule[]>;
  rateMbit: number;
}

export interface CreateCapsuleNetworkOptions {
  id: string;
  internet: boolean;
  /**
   * IPv4 CIDRs this capsule may reach whatever its internet switch; entries inside closed
   * (non-global) ranges must lie in the host's egressOpenable ranges.
   */
  allowOut?: string[];
  /** IPv4 CIDRs refused (allowOut beats them). */
  denyOut?: string[];
  /** Domain -> transforms of the egress proxy. */
  rules?: Record<string, NetworkRule[]>;
  rateMbit?: number;
  /** Served by the metadata endpoint (WRENN_SANDBOX_ID defaults to id). */
  metadata?: Record<string, string>;
  /**
   * Return a pre-built network before its forwarding rule is in place (forwarding stays blocked
   * until then; the host reaches the capsule either way). `firewallReady(id)` says when it is.
   * Lets the caller start the capsule while iptables runs.
   */
  deferFirewall?: boolean;
}

const ID_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;
/**
 * Pre-built networks an agent keeps (`wrenn agent`, `wrenn up`): a cold create then takes one
 * instead of running ip/tc (~15 ms here), as E2B's orchestrator keeps a pool of network slots.
 * WRENN_NET_WARM_POOL overrides it (0 = off). A bare NetworkManager (tests) keeps none by default.
 */
export function agentNetWarmPool(): number {
  return envInt('WRENN_NET_WARM_POOL', 2);
}

/** How long after a claim the warm pool starts building the replacement network. */
const WARM_REFILL_DELAY_MS = 300;

function ipv4Ok(ip: string): boolean {
  try {
    return parseCidr(ip).prefixLen === 32;
  } catch {
    return false;
  }
}

function cidrOption(given: string[] | undefined, env: string): Cidr[] {
  if (given === undefined) return parseCidrList(process.env[env], env);
  return given.map((c) => parseCidr(c));
}

function envInt(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name}="${v}" must be a non-negative integer`);
  return n;
}

function checkRate(rate: number): number {
  if (!Number.isInteger(rate) || rate < 0 || rate > 100_000) {
    throw new Error(`rateMbit ${rate} must be an integer between 0 (unlimited) and 100000`);
  }
  return rate;
}

function checkMetadata(values: Record<string, string>): void {
  for (const [k, v] of Object.entries(values)) {
    // Keys are URL path segments of the metadata endpoint.
    if (!/^[^/\x00-\x1f\x7f]{1,256}$/.test(k))
      throw new Error(`metadata key "${k}" is invalid: 1-256 characters, no '/' or control characters`);
    if (typeof v !== 'string') throw new Error(`metadata value of ${k} must be a string`);
  }
}

export class NetworkManager {
  /** Firewall syncs of networks handed out with deferFirewall, by capsule id. */
  private readonly pendingFirewall = new Map<string, Promise<void>>();
  readonly pool: AddressPool;
  readonly names: NetworkNames;
  readonly metadataPort: number;
  readonly defaultRateMbit: number;
  readonly dataDir: string;
  private readonly txqueuelen: number;
  private readonly store: SlotStore;
  private readonly firewall: Firewall;
  readonly egressAllow: Cidr[];
  /** The name servers capsules are given (runtimes write them to resolv.conf; port 53 to them is open). */
  readonly dnsServers: string[];
  readonly egressOpenable: Cidr[];
  /** The egress proxy's ports (plain HTTP, TLS). */
  readonly proxyPorts: { http: number; tls: number };
  private readonly egressUpstreamCa: string[] | undefined;
  private initPromise: Promise<void> | undefined;
  private readonly creating = new Set<string>();
  private warmTarget: number;
  /** Warm slots whose links are fully built (only these may be handed out). */
  private readonly warmReady = new Set<number>();
  private warmFill: Promise<void> | undefined;
  /** The last error of a background refill, for the agent's health report. */
  warmError: Error | undefined;

  constructor(opts: NetworkOptions) {
    if (!opts.dataDir) throw new Error('network: dataDir is required (the agent data dir, e.g. /var/lib/wrenn)');
    this.dataDir = opts.dataDir;
    this.pool = parsePool(opts.pool ?? process.env.WRENN_NET_POOL ?? DEFAULT_POOL);
    this.names = opts.names ?? DEFAULT_NAMES;
    if (!/^[a-z]{1,4}$/.test(this.names.ifPrefix))
      throw new Error(`ifPrefix "${this.names.ifPrefix}" must be 1-4 letters`);
    if (!/^[a-z][a-z0-9-]{0,19}$/.test(this.names.netnsPrefix))
      throw new Error(`netnsPrefix "${this.names.netnsPrefix}" must be lower-case letters, digits, '-' (max 20)`);
    if (!/^[A-Z][A-Z0-9_]{0,15}$/.test(this.names.chainPrefix))
      throw new Error(`chainPrefix "${this.names.chainPrefix}" must be upper-case letters, digits, '_' (max 16)`);
    const maxIf = `${this.names.ifPrefix}${this.pool.slots - 1}`;
    if (maxIf.length > 15) throw new Error(`interface names like ${maxIf} exceed IFNAMSIZ: use a smaller pool`);
    this.metadataPort = opts.metadataPort ?? envInt('WRENN_METADATA_PORT', DEFAULT_METADATA_PORT);
    if (this.metadataPort < 1 || this.metadataPort > 65535)
      throw new Error(`metadata port ${this.metadataPort} is not a TCP port`);
    // Next to the metadata port by default, so agents given distinct metadata ports (tests) get distinct proxies.
    const proxyPort = opts.egressProxyPort ?? envInt('WRENN_EGRESS_PROXY_PORT', this.metadataPort + 1);
    if (proxyPort < 1 || proxyPort > 65534) throw new Error(`egress proxy port ${proxyPort} is not a TCP port`);
    this.proxyPorts = { http: proxyPort, tls: proxyPort + 1 };
    this.egressUpstreamCa = opts.egressUpstreamCa;
    this.defaultRateMbit = checkRate(opts.rateMbit ?? envInt('WRENN_NET_RATE_MBIT', DEFAULT_RATE_MBIT));
    this.txqueuelen = opts.txqueuelen ?? DEFAULT_TXQUEUELEN;
    this.warmTarget = opts.warmPool ?? envInt('WRENN_NET_WARM_POOL', 0);
    this.store = new SlotStore(opts.dataDir, this.pool.slots);
    this.egressAllow = cidrOption(opts.egressAllow, 'WRENN_EGRESS_ALLOW_CIDRS');
    this.egressOpenable = cidrOption(opts.egressOpenable, 'WRENN_EGRESS_OPENABLE_CIDRS');
    this.dnsServers = [...(opts.dnsServers ?? hostNameServers())];
    // IPv6 name servers (or anything else in resolv.conf) need no rule: capsules have IPv4 only.
    const dnsV4 = this.dnsServers.filter((ip) => /^\d{1,3}(\.\d{1,3}){3}$/.test(ip) && ipv4Ok(ip));
    this.firewall = new Firewall(
      {
        chainPrefix: this.names.chainPrefix,
        ifPrefix: this.names.ifPrefix,
        pool: this.pool.cidr,
        slots: this.pool.slots,
        metadataPort: this.metadataPort,
        dnsServers: dnsV4,
        allowCidrs: this.egressAllow.map((c) => c.text),
        proxyPorts: this.proxyPorts,
      },
      () =>
        this.store
          .list()
          .filter((r) => r.id !== '')
          .map((r) => this.egressRule(r)),
    );
  }

  /** Loads persisted slots, turns on forwarding and (re)installs the firewall. Safe to call often. */
  init(): Promise<void> {
    this.initPromise ??= (async () => {
      const { corrupt } = await this.store.load();
      await this.store.removeFiles(corrupt);
      await prepareNetnsDir(`${this.names.netnsPrefix}probe-${process.pid}`);
      await enableIpForwarding();
      await this.firewall.install();
      this.refillWarm();
    })().catch((e) => {
      this.initPromise = undefined;
      throw e;
    });
    return this.initPromise;
  }

  async create(o: CreateCapsuleNetworkOptions): Promise<CapsuleNetwork> {
    if (!ID_RE.test(o.id))
      throw new Error(`capsule id "${o.id}" is invalid: use lower-case letters, digits and '-' (max 63)`);
    if (typeof o.internet !== 'boolean') throw new Error('internet must be true or false');
    const policy = this.checkPolicy({
      ...(o.allowOut ? { allowOut: o.allowOut } : {}),
      ...(o.denyOut ? { denyOut: o.denyOut } : {}),
      ...(o.rules ? { rules: o.rules } : {}),
    });
    checkMetadata(o.metadata ?? {});
    const rateMbit = checkRate(o.rateMbit ?? this.defaultRateMbit);
    await this.init();
    if (this.creating.has(o.id) || this.store.byId(o.id)) {
      throw new Error(`capsule ${o.id} already has a network: destroy it first`);
    }
    this.creating.add(o.id);
    try {
      const warm = rateMbit === this.defaultRateMbit ? await this.claimWarm(o, rateMbit, policy) : undefined;
      if (warm) return warm;
      const rec = await this.store.allocate((slot) => ({
        slot,
        id: o.id,
        netnsName: this.names.netnsPrefix + o.id,
        internet: o.internet,
        ...policy,
        rateMbit,
        metadata: { ...(o.metadata ?? {}) },
        pool: this.pool.cidr,
        createdAt: new Date().toISOString(),
      }));
      const net = this.describe(rec);
      try {
        await Promise.all([
          createLinks({ ...net, prefixLen: SLOT_PREFIX_LEN, rateMbit, txqueuelen: this.txqueuelen }),
          this.firewall.sync(this.ifname(rec.slot)),
        ]);
      } catch (e) {
        await this.teardown(rec).catch(() => {});
        throw e;
      }
      return net;
    } finally {
      this.creating.delete(o.id);
    }
  }

  /** Validates an allowOut list's CIDRs against this host's settings and returns them normalised (throws with why). */
  checkAllowOut(list: unknown): string[] {
    return checkAllowOut(list, this.egressOpenable, this.egressAllow);
  }

  /**
   * Validates an egress policy (the contract's syntax, then which closed ranges allowOut may name
   * here) and returns it normalised: allowOut as CIDRs then domains, denyOut as CIDRs.
   */
  checkPolicy(p: EgressPolicy): { allowOut: string[]; denyOut: string[]; rules: Record<string, NetworkRule[]> } {
    const problem = egressPolicyProblem(p, 'network');
    if (problem) throw new Error(problem);
    const { cidrs, domains } = splitAllowOut(p.allowOut ?? []);
    let allowCidrs: string[];
    try {
      allowCidrs = this.checkAllowOut(cidrs);
    } catch (err) {
      throw new Error(`network.allow_out: ${(err as Error).message}`);
    }
    return {
      allowOut: [...allowCidrs, ...domains],
      denyOut: normaliseDenyOut(p.denyOut ?? []),
      rules: p.rules ?? {},
    };
  }

  /** Replaces capsule `id`'s egress policy (checked first); new connections follow it at once. */
  async setPolicy(id: string, p: EgressPolicy): Promise<CapsuleNetwork> {
    const policy = this.checkPolicy(p);
    await this.init();
    const next = { ...this.require(id), ...policy };
    await this.store.update(next);
    await this.firewall.sync(this.ifname(next.slot));
    return this.describe(next);
  }

  /**
   * Whether capsule `e` may not reach `ip` whatever its policy says: a closed (non-global) range
   * that neither the host nor the capsule opened, or an address of the host itself. The egress
   * proxy asks this of every address a name resolves to (DNS rebinding).
   */
  egressClosed(ip: string, e: CapsuleEgress): boolean {
    if (Object.values(networkInterfaces()).some((l) => l?.some((a) => a.address === ip))) return true;
    const c = parseCidr(ip);
    if (!nonGlobalRangeOf(c) || this.egressAllow.some((h) => cidrWithin(c, h))) return false;
    const opened = openedEntries(e.allowCidrs, this.egressOpenable, this.egressAllow).map(parseCidr);
    return !opened.some((o) => cidrWithin(c, o));
  }

  /**
   * Starts the egress proxy on this manager's proxy ports (all addresses; only capsules reach them).
   * With `ca`, HTTPS requests to domains with rules are terminated with its certificates.
   */
  startEgressProxy(o: Pick<EgressProxyOptions, 'upstreamCa' | 'log'> & { ca?: EgressCa } = {}): Promise<EgressProxy> {
    const { ca, ...rest } = o;
    const upstreamCa = o.upstreamCa ?? this.egressUpstreamCa;
    return startEgressProxy({
      ...rest,
      // Node's CAs plus the extra ones (an explicit `ca` replaces the defaults).
      ...(upstreamCa ? { upstreamCa: [...rootCertificates, ...upstreamCa] } : {}),
      ...(ca ? { secureContextFor: (host: string) => ca.contextFor(host) } : {}),
      httpPort: this.proxyPorts.http,
      tlsPort: this.proxyPorts.tls,
      lookup: (addr) => this.egressFor(addr),
      closed: (ip, e) => this.egressClosed(ip, e),
      dnsServers: this.dnsServers.filter((ip) => ipv4Ok(ip)),
    });
  }

  /** The capsule behind a source address, for the egress proxy (undefined: none of ours). */
  egressFor(remoteAddress: string): CapsuleEgress | undefined {
    const slot = slotOfCapsuleIp(this.pool, remoteAddress);
    const rec = slot === undefined ? undefined : this.store.bySlotNumber(slot);
    if (!rec || rec.id === '') return undefined;
    const { cidrs, domains } = splitAllowOut(rec.allowOut ?? []);
    return {
      id: rec.id,
      internet: rec.internet,
      allowCidrs: cidrs,
      domains,
      denyOut: rec.denyOut ?? [],
      rules: rec.rules ?? {},
    };
  }

  /** Hands a pre-built network to capsule `o.id`: one persisted rename and its firewall rule. */
  private async claimWarm(
    o: CreateCapsuleNetworkOptions,
    rateMbit: number,
    policy: ReturnType<NetworkManager['checkPolicy']>,
  ): Promise<CapsuleNetwork | undefined> {
    const rec = await this.store.takeFirst(
      (r) => r.id === '' && this.warmReady.has(r.slot) && r.rateMbit === rateMbit,
      (r) => ({
        ...r,
        id: o.id,
        internet: o.internet,
        ...policy,
        metadata: { ...(o.metadata ?? {}) },
        createdAt: new Date().toISOString(),
      }),
    );
    if (!rec) return undefined;
    this.warmReady.delete(rec.slot);
    this.refillWarm(WARM_REFILL_DELAY_MS);
    const sync = this.firewall.sync(this.ifname(rec.slot));
    if (o.deferFirewall) {
      // A failure surfaces in firewallReady(); the caller then destroys the network.
      const pending = sync.finally(() => {
        if (this.pendingFirewall.get(o.id) === pending) this.pendingFirewall.delete(o.id);
      });
      pending.catch(() => undefined);
      this.pendingFirewall.set(o.id, pending);
      return this.describe(rec);
    }
    try {
      await sync;
    } catch (e) {
      await this.teardown(rec).catch(() => {});
      throw e;
    }
    return this.describe(rec);
  }

  /** Resolves once capsule `id`'s forwarding rule is in place (see `deferFirewall`). */
  async firewallReady(id: string): Promise<void> {
    await this.pendingFirewall.get(id);
  }

  /**
   * Pre-builds networks until `n` are ready to be claimed (namespace, veth, addresses, rate limit;
   * forwarding stays blocked until a capsule claims one). Returns how many are ready.
   */
  async prepareNetworks(n: number): Promise<number> {
    if (!Number.isInteger(n) || n < 0) throw new Error(`prepareNetworks(${n}): need a non-negative integer`);
    await this.init();
    const missing = n - this.store.list().filter((r) => r.id === '').length;
    await Promise.all(Array.from({ length: Math.max(0, missing) }, () => this.buildWarm()));
    return this.warmReady.size;
  }

  private async buildWarm(): Promise<void> {
    const rec = await this.store.allocate((slot) => ({
      slot,
      id: '',
      netnsName: `${this.names.netnsPrefix}warm-${slot}`,
      internet: false,
      rateMbit: this.defaultRateMbit,
      metadata: {},
      pool: this.pool.cidr,
      createdAt: new Date().toISOString(),
    }));
    const net = this.describe(rec);
    try {
      await createLinks({ ...net, prefixLen: SLOT_PREFIX_LEN, rateMbit: rec.rateMbit, txqueuelen: this.txqueuelen });
    } catch (e) {
      await this.teardown(rec).catch(() => {});
      throw e;
    }
    this.warmReady.add(rec.slot);
  }

  /** Tops the warm pool up to warmTarget in the background (one refill at a time). */
  /** `afterMs`: start that late (after a claim: not while the claiming capsule starts, on 2 cores). */
  private refillWarm(afterMs = 0): void {
    if (this.warmTarget === 0 || this.warmFill) return;
    this.warmFill = (async () => {
      try {
        if (afterMs > 0) await sleep(afterMs);
        while (this.store.list().filter((r) => r.id === '').length < this.warmTarget) await this.buildWarm();
        this.warmError = undefined;
      } catch (e) {
        this.warmError = e as Error;
      } finally {
        this.warmFill = undefined;
      }
    })();
  }

  /** Changes the warm pool size: builds up to `n` in the background, removes ready extras now. */
  async setWarmPool(n: number): Promise<void> {
    if (!Number.isInteger(n) || n < 0) throw new Error(`setWarmPool(${n}): need a non-negative integer`);
    await this.init();
    this.warmTarget = n;
    await this.warmFill;
    const extra = this.store
      .list()
      .filter((r) => r.id === '' && this.warmReady.has(r.slot))
      .slice(n);
    for (const r of extra) this.warmReady.delete(r.slot); // nobody may claim them while they go
    await removeLinks(extra.map((r) => ({ hostIfname: this.ifname(r.slot), netnsName: r.netnsName })));
    for (const r of extra) await this.store.release(r.slot);
    this.refillWarm();
  }

  /**
   * Removes the firewall chains when no capsule network is left (an agent stopping with nothing to
   * keep leaves no rule behind); false when networks remain and the chains stay for them.
   */
  async uninstallIfUnused(): Promise<boolean> {
    if (!this.initPromise) return false;
    await this.init();
    await this.warmFill;
    if (this.store.list().length > 0) return false;
    await this.firewall.uninstall();
    this.initPromise = undefined;
    return true;
  }

  /** Resolves when no background refill is running. */
  async warmSettled(): Promise<void> {
    while (this.warmFill) await this.warmFill;
  }

  /** Networks ready to be claimed right now. */
  get warmCount(): number {
    return this.warmReady.size;
  }

  /** Removes everything of capsule `id`; a capsule without a network is fine. */
  async destroy(id: string): Promise<void> {
    await this.init();
    // A rule still being added would otherwise outlive the teardown.
    await this.pendingFirewall.get(id)?.catch(() => undefined);
    const rec = this.store.byId(id);
    if (!rec) {
      if (ID_RE.test(id)) await removeLinks([{ netnsName: this.names.netnsPrefix + id }]);
      return;
    }
    await this.teardown(rec);
  }

  async setInternet(id: string, on: boolean): Promise<CapsuleNetwork> {
    await this.init();
    const rec = this.require(id);
    if (rec.internet === on) return this.describe(rec);
    const next = { ...rec, internet: on };
    await this.store.update(next);
    await this.firewall.sync(this.ifname(rec.slot));
    return this.describe(next);
  }

  /** Sets the values the metadata endpoint serves to capsule `id` (persisted with its slot). */
  async setMetadata(id: string, values: Record<string, string>): Promise<void> {
    await this.init();
    checkMetadata(values);
    await this.store.update({ ...this.require(id), metadata: { ...values } });
  }

  async list(): Promise<CapsuleNetwork[]> {
    await this.init();
    return this.store
      .list()
      .filter((r) => r.id !== '')
      .map((r) => this.describe(r));
  }

  async get(id: string): Promise<CapsuleNetwork | undefined> {
    await this.init();
    const rec = this.store.byId(id);
    return rec && this.describe(rec);
  }

  /** What the metadata endpoint answers to a request from `remoteAddress`. */
  metadataFor(remoteAddress: string): Record<string, string> | undefined {
    const slot = slotOfCapsuleIp(this.pool, remoteAddress);
    const rec = slot === undefined ? undefined : this.store.bySlotNumber(slot);
    return rec && rec.id !== '' ? { WRENN_SANDBOX_ID: rec.id, ...rec.metadata } : undefined;
  }

  /** Counters of the capsule's internet switch rule (ACCEPT when on, DROP when off). */
  async egressCounters(id: string) {
    await this.init();
    return this.firewall.egressCounters(id);
  }

  /**
   * Removes namespaces, veths, slots and rules of capsules not in knownIds (run at agent start,
   * before re-adopting running capsules). Returns the ids whose networks were removed.
   */
  async cleanupStale(
    knownIds: Iterable<string>,
  ): Promise<{ removedIds: string[]; removedNetns: string[]; removedLinks: string[] }> {
    await this.init();
    await this.warmFill;
    const known = new Set(knownIds);
    // Warm networks of an earlier run go too (their readiness is unknown); init refills the pool.
    const stale = this.store.list().filter((r) => !known.has(r.id) && !(r.id === '' && this.warmReady.has(r.slot)));
    await removeLinks(stale.map((r) => ({ hostIfname: this.ifname(r.slot), netnsName: r.netnsName })));
    for (const r of stale) await this.store.release(r.slot);
    const keep = this.store.list();
    const keepNetns = new Set(keep.map((r) => r.netnsName));
    const keepIfs = new Set(keep.map((r) => this.ifname(r.slot)));
    const netns = (await listNetns(this.names.netnsPrefix)).filter((n) => !keepNetns.has(n));
    const links = (await listHostIfnames(this.names.ifPrefix)).filter((n) => !keepIfs.has(n));
    await removeLinks([...netns.map((n) => ({ netnsName: n })), ...links.map((n) => ({ hostIfname: n }))]);
    await this.firewall.install(); // rewrites every chain, EGRESS from the kept slots only
    return { removedIds: stale.filter((r) => r.id !== '').map((r) => r.id), removedNetns: netns, removedLinks: links };
  }

  /** Destroys every capsule network of this manager and removes the firewall chains (uninstall, tests). */
  async removeAll(): Promise<void> {
    await this.init();
    await this.warmFill;
    this.warmReady.clear();
    await this.cleanupStale([]);
    await this.firewall.uninstall();
    this.initPromise = undefined;
  }

  private async teardown(rec: SlotRecord): Promise<void> {
    await removeLinks([{ hostIfname: this.ifname(rec.slot), netnsName: rec.netnsName }]);
    // Its relayed egress connections lost their client side with the veth: no reset would come.
    if (rec.id !== '') closeEgressConnections(rec.id);
    this.warmReady.delete(rec.slot);
    await this.store.release(rec.slot);
    if (rec.id !== '') await this.firewall.sync(this.ifname(rec.slot));
  }

  private require(id: string): SlotRecord {
    const rec = this.store.byId(id);
    if (!rec) throw new Error(`capsule ${id} has no network on this host`);
    return rec;
  }

  private ifname(slot: number): string {
    return `${this.names.ifPrefix}${slot}`;
  }

  private egressRule(r: SlotRecord): EgressRule {
    const { cidrs: allowOut, domains } = splitAllowOut(r.allowOut ?? []);
    const opened = openedEntries(allowOut, this.egressOpenable, this.egressAllow);
    const { capsuleIp } = slotAddresses(this.pool, r.slot);
    return {
      id: r.id,
      ifname: this.ifname(r.slot),
      ip: capsuleIp,
      internet: r.internet,
      allowOut,
      opened,
      denyOut: r.denyOut ?? [],
      proxied: domains.length > 0 || Object.keys(r.rules ?? {}).length > 0,
    };
  }

  private describe(r: SlotRecord): CapsuleNetwork {
    const { hostIp, capsuleIp } = slotAddresses(this.pool, r.slot);
    return {
      id: r.id,
      slot: r.slot,
      netnsName: r.netnsName,
      netnsPath: `/run/netns/${r.netnsName}`,
      hostIfname: this.ifname(r.slot),
      hostIp,
      capsuleIp,
      prefixLen: SLOT_PREFIX_LEN,
      internet: r.internet,
      allowOut: [...(r.allowOut ?? [])],
      denyOut: [...(r.denyOut ?? [])],
      rules: r.rules ?? {},
      rateMbit: r.rateMbit,
    };
  }
}
