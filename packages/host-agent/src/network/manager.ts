// The per-capsule network of this host: slot allocation, namespace + veth, firewall rules and the
// values the metadata endpoint serves. One instance per agent (see index.ts for the default one).
import { parsePool, slotAddresses, slotOfCapsuleIp, SLOT_PREFIX_LEN, type AddressPool } from './address-pool.js';
import { SlotStore, type SlotRecord } from './slot-store.js';
import { Firewall, type EgressRule } from './firewall.js';
import { createLinks, removeLinks, listNetns, listHostIfnames, prepareNetnsDir, enableIpForwarding } from './links.js';

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
  rateMbit: number;
}

export interface CreateCapsuleNetworkOptions {
  id: string;
  internet: boolean;
  rateMbit?: number;
  /** Served by the metadata endpoint (WRENN_SANDBOX_ID defaults to id). */
  metadata?: Record<string, string>;
}

const ID_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;

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

export class NetworkManager {
  readonly pool: AddressPool;
  readonly names: NetworkNames;
  readonly metadataPort: number;
  readonly defaultRateMbit: number;
  readonly dataDir: string;
  private readonly txqueuelen: number;
  private readonly store: SlotStore;
  private readonly firewall: Firewall;
  private initPromise: Promise<void> | undefined;
  private readonly creating = new Set<string>();

  constructor(opts: NetworkOptions) {
    if (!opts.dataDir) throw new Error('network: dataDir is required (the agent data dir, e.g. /var/lib/wrenn)');
    this.dataDir = opts.dataDir;
    this.pool = parsePool(opts.pool ?? process.env.WRENN_NET_POOL ?? DEFAULT_POOL);
    this.names = opts.names ?? DEFAULT_NAMES;
    if (!/^[a-z]{1,4}$/.test(this.names.ifPrefix)) throw new Error(`ifPrefix "${this.names.ifPrefix}" must be 1-4 letters`);
    const maxIf = `${this.names.ifPrefix}${this.pool.slots - 1}`;
    if (maxIf.length > 15) throw new Error(`interface names like ${maxIf} exceed IFNAMSIZ: use a smaller pool`);
    this.metadataPort = opts.metadataPort ?? envInt('WRENN_METADATA_PORT', DEFAULT_METADATA_PORT);
    if (this.metadataPort < 1 || this.metadataPort > 65535) throw new Error(`metadata port ${this.metadataPort} is not a TCP port`);
    this.defaultRateMbit = checkRate(opts.rateMbit ?? envInt('WRENN_NET_RATE_MBIT', DEFAULT_RATE_MBIT));
    this.txqueuelen = opts.txqueuelen ?? DEFAULT_TXQUEUELEN;
    this.store = new SlotStore(opts.dataDir, this.pool.slots);
    this.firewall = new Firewall(
      {
        chainPrefix: this.names.chainPrefix,
        ifPrefix: this.names.ifPrefix,
        pool: this.pool.cidr,
        metadataPort: this.metadataPort,
      },
      () => this.store.list().map((r) => this.egressRule(r)),
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
    })().catch((e) => {
      this.initPromise = undefined;
      throw e;
    });
    return this.initPromise;
  }

  async create(o: CreateCapsuleNetworkOptions): Promise<CapsuleNetwork> {
    if (!ID_RE.test(o.id)) throw new Error(`capsule id "${o.id}" is invalid: use lower-case letters, digits and '-' (max 63)`);
    if (typeof o.internet !== 'boolean') throw new Error('internet must be true or false');
    const rateMbit = checkRate(o.rateMbit ?? this.defaultRateMbit);
    await this.init();
    if (this.creating.has(o.id) || this.store.byId(o.id)) {
      throw new Error(`capsule ${o.id} already has a network: destroy it first`);
    }
    this.creating.add(o.id);
    try {
      const rec = await this.store.allocate((slot) => ({
        slot,
        id: o.id,
        netnsName: this.names.netnsPrefix + o.id,
        internet: o.internet,
        rateMbit,
        metadata: { ...(o.metadata ?? {}) },
        pool: this.pool.cidr,
        createdAt: new Date().toISOString(),
      }));
      const net = this.describe(rec);
      try {
        await Promise.all([
          createLinks({ ...net, prefixLen: SLOT_PREFIX_LEN, rateMbit, txqueuelen: this.txqueuelen }),
          this.firewall.addEgress(this.egressRule(rec)),
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

  /** Removes everything of capsule `id`; a capsule without a network is fine. */
  async destroy(id: string): Promise<void> {
    await this.init();
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
    await this.firewall.replaceEgress(this.egressRule(rec), this.egressRule(next));
    return this.describe(next);
  }

  /** Sets the values the metadata endpoint serves to capsule `id` (persisted with its slot). */
  async setMetadata(id: string, values: Record<string, string>): Promise<void> {
    await this.init();
    for (const [k, v] of Object.entries(values)) {
      if (typeof v !== 'string') throw new Error(`metadata value of ${k} must be a string`);
    }
    await this.store.update({ ...this.require(id), metadata: { ...values } });
  }

  async list(): Promise<CapsuleNetwork[]> {
    await this.init();
    return this.store.list().map((r) => this.describe(r));
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
    return rec && { WRENN_SANDBOX_ID: rec.id, ...rec.metadata };
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
  async cleanupStale(knownIds: Iterable<string>): Promise<{ removedIds: string[]; removedNetns: string[]; removedLinks: string[] }> {
    await this.init();
    const known = new Set(knownIds);
    const stale = this.store.list().filter((r) => !known.has(r.id));
    await removeLinks(stale.map((r) => ({ hostIfname: this.ifname(r.slot), netnsName: r.netnsName })));
    for (const r of stale) await this.store.release(r.slot);
    const keep = this.store.list();
    const keepNetns = new Set(keep.map((r) => r.netnsName));
    const keepIfs = new Set(keep.map((r) => this.ifname(r.slot)));
    const netns = (await listNetns(this.names.netnsPrefix)).filter((n) => !keepNetns.has(n));
    const links = (await listHostIfnames(this.names.ifPrefix)).filter((n) => !keepIfs.has(n));
    await removeLinks([...netns.map((n) => ({ netnsName: n })), ...links.map((n) => ({ hostIfname: n }))]);
    await this.firewall.install(); // rewrites every chain, EGRESS from the kept slots only
    return { removedIds: stale.map((r) => r.id), removedNetns: netns, removedLinks: links };
  }

  /** Destroys every capsule network of this manager and removes the firewall chains (uninstall, tests). */
  async removeAll(): Promise<void> {
    await this.init();
    await this.cleanupStale([]);
    await this.firewall.uninstall();
    this.initPromise = undefined;
  }

  private async teardown(rec: SlotRecord): Promise<void> {
    await removeLinks([{ hostIfname: this.ifname(rec.slot), netnsName: rec.netnsName }]);
    await this.store.release(rec.slot);
    await this.firewall.removeEgress(this.egressRule(rec));
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
    return { id: r.id, ifname: this.ifname(r.slot), internet: r.internet };
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
      rateMbit: r.rateMbit,
    };
  }
}
