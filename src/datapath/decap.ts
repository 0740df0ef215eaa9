/**
 * The backend side of DSR's encapsulated dispatch (bpf/decap.bpf.c): load
 * the decapsulation program, attach it at tc ingress, and keep its two
 * maps — the service addresses this host serves and the host's own
 * addresses (the outer destinations it accepts) — equal to what the
 * caller wants, writing only the difference.
 */
import { join } from 'node:path';
import { ensureBpfObject } from './bpf-build.js';
import { encodeRodata, readAddr, RODATA_DEFAULTS, writeAddr } from './abi.js';
import { BpfError, type BpfMap, type BpfObject, type BpfProgram, type NativeAddon } from '../native/libbpf.js';

/** The C enum ph_dc_stat, in order (test/datapath/decap-fixtures.test.ts compares). */
export const DECAP_STAT_REASONS = ['decap', 'not_node', 'not_vip', 'malformed', 'inner_proto', 'nested', 'fragment', 'fail', 'handoff'] as const;
export type DecapStatReason = (typeof DECAP_STAT_REASONS)[number];

export const DECAP_MAP = { vips: 'ph_dc_vips', nodes: 'ph_dc_nodes', stats: 'ph_dc_stats', prevFrontends: 'ph_dc_prev_fe', prevSlots: 'ph_dc_prev_slot' } as const;
export const DECAP_PROGRAM = 'pharos_tc_decap';
/**
 * tc ingress filter of the decapsulation program: its own handle, and a
 * priority after the LB program's (1), which it must not replace.
 */
export const DECAP_TC = { handle: 2, priority: 2 } as const;

const AF_INET = 2;
const AF_INET6 = 10;

/** Key of ph_dc_vips / ph_dc_nodes: 16 address bytes, family, 3 bytes padding. */
export function encodeDecapAddr(address: string): Buffer {
  const b = Buffer.alloc(20);
  b[16] = writeAddr(b, 0, address) === 'IPv4' ? AF_INET : AF_INET6;
  return b;
}

export function decodeDecapAddr(key: Buffer): string {
  return readAddr(key, 0, key[16] === AF_INET ? AF_INET : AF_INET6);
}

/** A frontend's previous Maglev table as the LB nodes held it: the owner (backend address) of each of its M slots. */
export interface PreviousTable {
  address: string;
  port: number;
  protocol: 'TCP' | 'UDP';
  owners: readonly string[];
}

/** Key of ph_dc_prev_fe: the inner destination (16 address bytes, port, protocol, family). */
export function encodeDecapFrontend(t: Pick<PreviousTable, 'address' | 'port' | 'protocol'>): Buffer {
  const b = Buffer.alloc(20);
  b[19] = writeAddr(b, 0, t.address) === 'IPv4' ? AF_INET : AF_INET6;
  b.writeUInt16BE(t.port, 16);
  b[18] = t.protocol === 'TCP' ? 6 : 17;
  return b;
}

export class LoadedDecap {
  private readonly served = new Map<string, Set<string>>([[DECAP_MAP.vips, new Set()], [DECAP_MAP.nodes, new Set()]]);

  constructor(private readonly addon: NativeAddon, private readonly object: BpfObject, readonly program: BpfProgram) {
    // Pinned maps outlive an agent (no packet lost across a restart): what they hold is the starting point of the diff.
    for (const [name, set] of this.served) for (const key of object.map(name).keys()) set.add(decodeDecapAddr(key));
  }

  /** At tc ingress of `ifname` (idempotent: replaces). Returns its ifindex. */
  attach(ifname: string, netns?: string): number {
    const ifindex = this.addon.ifIndex(ifname, netns);
    this.addon.tcAttach(ifindex, 'ingress', this.program.fd, { ...DECAP_TC, ...(netns ? { netns } : {}) });
    return ifindex;
  }

  detach(ifname: string, netns?: string): void {
    try {
      this.addon.tcDetach(this.addon.ifIndex(ifname, netns), 'ingress', { ...DECAP_TC, ...(netns ? { netns } : {}) });
    } catch (err) {
      if (!(err instanceof BpfError && (err.code === 'ENOENT' || err.code === 'EINVAL' || err.code === 'ENODEV'))) throw err;
    }
  }

  /** Service addresses whose encapsulated packets are delivered here. */
  setVips(addresses: Iterable<string>): { added: string[]; removed: string[] } {
    return this.setMap(DECAP_MAP.vips, addresses);
  }

  /** This host's addresses: the outer destinations accepted. */
  setNodeAddresses(addresses: Iterable<string>): { added: string[]; removed: string[] } {
    return this.setMap(DECAP_MAP.nodes, addresses);
  }

  /**
   * The previous tables the hand-off reads (bpf/lib/handoff.h), replacing
   * whatever was there: slots first, then the frontends that point at them.
   */
  setPreviousTables(tables: readonly PreviousTable[]): void {
    const fronts = this.object.map(DECAP_MAP.prevFrontends);
    const slots = this.object.map(DECAP_MAP.prevSlots);
    for (const k of fronts.keys()) fronts.delete(k);
    for (const k of slots.keys()) slots.delete(k);
    tables.forEach((t, i) => {
      const id = i + 1;
      t.owners.forEach((owner, slot) => {
        const key = Buffer.alloc(8);
        key.writeUInt32LE(id, 0);
        key.writeUInt32LE(slot, 4);
        slots.update(key, encodeDecapAddr(owner));
      });
      const value = Buffer.alloc(8);
      value.writeUInt32LE(t.owners.length, 0);
      value.writeUInt32LE(id, 4);
      fronts.update(encodeDecapFrontend(t), value);
    });
  }

  map(name: string): BpfMap {
    return this.object.map(name);
  }

  /** Counter sums over CPUs, by reason. */
  counters(): Record<DecapStatReason, bigint> {
    const stats = this.object.map(DECAP_MAP.stats);
    const out = Object.fromEntries(DECAP_STAT_REASONS.map((r) => [r, 0n])) as Record<DecapStatReason, bigint>;
    DECAP_STAT_REASONS.forEach((reason, i) => {
      const key = Buffer.alloc(4);
      key.writeUInt32LE(i);
      const v = stats.lookup(key);
      if (!v) return;
      for (let off = 0; off + 8 <= v.length; off += 8) out[reason] += v.readBigUInt64LE(off);
    });
    return out;
  }

  close(): void {
    this.object.close();
  }

  private setMap(name: string, addresses: Iterable<string>): { added: string[]; removed: string[] } {
    const map = this.object.map(name);
    const have = this.served.get(name)!;
    const want = new Set(addresses);
    const added: string[] = [];
    const removed: string[] = [];
    for (const a of want) {
      if (have.has(a)) continue;
      map.update(encodeDecapAddr(a), Buffer.from([1]));
      have.add(a);
      added.push(a);
    }
    for (const a of [...have]) {
      if (want.has(a)) continue;
      map.delete(encodeDecapAddr(a));
      have.delete(a);
      removed.push(a);
    }
    return { added, removed };
  }
}

/**
 * Loads bpf/decap.bpf.c (compiled on demand). With `pinDir` its maps are
 * pinned there (ph_dc_*), so a restarted agent keeps serving what the
 * previous one programmed; its first set* calls change only the difference.
 */
export function loadDecap(opts: { addon: NativeAddon; pinDir?: string; objectPath?: string; hashSeed?: number }): LoadedDecap {
  const object = opts.addon.openObject(opts.objectPath ?? ensureBpfObject('decap'));
  try {
    const own = new Set<string>(Object.values(DECAP_MAP));
    for (const name of object.mapNames()) {
      if (name.includes('.')) continue; // libbpf's internal maps (.rodata)
      // The hand-off (handoff.h) hashes flows as the LB does, through maps.h, which declares every LB map: none is used here.
      if (!own.has(name)) object.setAutocreate(name, false);
      // Counters start again with each agent (Prometheus counters may): a pinned copy would only tie its size to an older build.
      else if (opts.pinDir && name !== DECAP_MAP.stats) object.setPinPath(name, join(opts.pinDir, name));
    }
    object.setRodata('cfg_hash_seed', encodeRodata('cfg_hash_seed', (opts.hashSeed ?? RODATA_DEFAULTS.cfg_hash_seed) >>> 0));
    object.load();
    return new LoadedDecap(opts.addon, object, object.program(DECAP_PROGRAM));
  } catch (err) {
    object.close();
    throw err;
  }
}
