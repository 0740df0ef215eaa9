/**
 * `pharos agent --role backend`: the agent on a DSR backend host. It
 * loads only the decapsulation program (bpf/decap.bpf.c) at tc ingress of
 * its interfaces and, from the same manifests as the LB nodes, keeps three
 * things equal to the services whose ready endpoints are on this host:
 * the program's VIP map, its map of this host's addresses (the outer
 * destinations it accepts), and the VIPs on `lo`.
 *
 * Why the VIP on lo (and not a local route): the decapsulated packet must
 * be delivered locally to a socket listening on the VIP, and replies must
 * leave from it; an address on lo does both and is what IPVS-DR and Katran
 * backends do. ARP-silent: arp_ignore=1 (answer only for addresses of the
 * asked interface) and arp_announce=2 (never use lo's VIP as an ARP
 * source) on all and on each interface, so the backend never claims the
 * VIP on a segment the LB announces it on. IPv6 needs no sysctl: the
 * kernel answers a solicitation only for the asked interface's addresses.
 */
import { execFile } from 'node:child_process';
import { networkInterfaces } from 'node:os';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { objectKey, type EndpointSlice, type Kind, type Service } from '../model/types.js';
import type { AgentController, ChangeSet } from '../store/controller.js';
import type { SnapshotOf } from '../store/store.js';
import { frontendsForService, serviceKeyOfSlice, slicesByService } from './desired.js';
import { loadDecap, type LoadedDecap, type PreviousTable } from './decap.js';
import { buildMaglevTable, maglevTableSize, MaglevError, type MaglevSizing } from './maglev.js';
import type { Frontend } from '../model/types.js';
import type { NativeAddon } from '../native/libbpf.js';
import type { Logger } from '../model/log.js';

const run = promisify(execFile);

export const BACKEND_ROLE_KINDS: ReadonlySet<Kind> = new Set<Kind>(['Service', 'EndpointSlice']);
type BackendRoleKind = 'Service' | 'EndpointSlice';

/**
 * The service addresses this host serves as a DSR backend (pure): those of
 * services of ours (LoadBalancer ingress, external IPs) with a ready (or
 * terminating but still serving) endpoint that is this node (by nodeName)
 * or one of its addresses.
 */
export function servedVips(services: Iterable<Service>, slices: Iterable<EndpointSlice>, opts: {
  nodeName: string; localAddresses: ReadonlySet<string>; isOurService: (svc: Service) => boolean;
}): Set<string> {
  const local = new Set<string>();
  for (const slice of slices) {
    // A terminating endpoint that still serves keeps its VIP: the hand-off brings it its established flows.
    const here = slice.endpoints.some((e) => (e.ready || (e.serving && e.terminating)) &&
      (e.nodeName === opts.nodeName || e.addresses.some((a) => opts.localAddresses.has(a))));
    if (here) local.add(serviceKeyOfSlice(slice));
  }
  const out = new Set<string>();
  for (const svc of services) {
    if (!local.has(objectKey(svc.meta))) continue;
    if (svc.type === 'LoadBalancer' && opts.isOurService(svc)) for (const i of svc.status.ingress) if (i.ip) out.add(i.ip);
    for (const ip of svc.externalIPs) out.add(ip);
  }
  return out;
}

/**
 * The owner (backend address) of each slot of the Maglev table the LB nodes
 * build for `f` — the planner's rule (plan.ts): active backends with a
 * weight, members ordered by address|port, M from the backend count.
 * Undefined when there is no table (no eligible backend, too many).
 */
export function maglevOwners(f: Frontend, sizing: MaglevSizing): string[] | undefined {
  const eligible = f.backends.filter((b) => b.state === 'active' && b.weight > 0);
  if (eligible.length === 0) return undefined;
  try {
    const size = maglevTableSize(eligible.length, sizing);
    const members = eligible.map((b) => ({ key: `${b.address}|${b.port}`, weight: b.weight, address: b.address })).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const index = buildMaglevTable(members, size.m, size.fullRatio ? undefined : 1);
    return Array.from(index, (i) => members[i]!.address);
  } catch (err) {
    if (err instanceof MaglevError) return undefined;
    throw err;
  }
}

/**
 * Per TCP frontend, the table before the last change of its backends, kept
 * for `keepMs` (pure: the caller gives the time). Flows the change moved to
 * a backend that has no socket for them are handed to their owner there.
 */
export class PreviousTables {
  private readonly current = new Map<string, { frontend: Frontend; owners: string[]; sig: string; inputs: string }>();
  private readonly previous = new Map<string, { table: PreviousTable; until: number }>();

  constructor(private readonly keepMs: number, private readonly sizing: MaglevSizing) {}

  /** Every TCP frontend as it is now. Returns: whether the previous tables changed. */
  update(frontends: readonly Frontend[], now: number): boolean {
    let changed = this.expire(now);
    const seen = new Set<string>();
    for (const f of frontends) {
      if (f.protocol !== 'TCP') continue;
      const key = `${f.address}|${f.port}`;
      if (seen.has(key)) continue;
      seen.add(key);
      // What the table is built from: unchanged backends, unchanged table — no rebuild (every pass would otherwise build every table).
      const inputs = f.backends.map((b) => `${b.address}|${b.port}|${b.weight}|${b.state}`).sort().join(',');
      const cur = this.current.get(key);
      if (cur && cur.inputs === inputs) continue;
      const owners = maglevOwners(f, this.sizing);
      const sig = owners ? owners.join(',') : '';
      if (cur?.sig === sig) {
        this.current.set(key, { ...cur, frontend: f, inputs });
        continue;
      }
      if (cur && cur.sig !== '' && this.keepMs > 0) {
        this.previous.set(key, { table: { address: f.address, port: f.port, protocol: 'TCP', owners: cur.owners }, until: now + this.keepMs });
        changed = true;
      }
      if (owners) this.current.set(key, { frontend: f, owners, sig, inputs });
      else this.current.delete(key);
    }
    for (const key of [...this.current.keys()]) if (!seen.has(key)) this.current.delete(key);
    return changed;
  }

  /** Drops tables past their time. Returns: whether any went. */
  expire(now: number): boolean {
    let changed = false;
    for (const [key, p] of this.previous) {
      if (p.until <= now) {
        this.previous.delete(key);
        changed = true;
      }
    }
    return changed;
  }

  tables(): PreviousTable[] {
    return [...this.previous.values()].map((p) => p.table);
  }

  /** When the next table expires (Infinity: none kept). */
  nextExpiry(): number {
    return Math.min(Infinity, ...[...this.previous.values()].map((p) => p.until));
  }
}

/** How long a previous table is kept: the longest established flow a backend change should not break. */
export const PREVIOUS_TABLE_KEEP_MS = 5 * 60_000;

export interface BackendRoleOptions {
  addon: NativeAddon;
  pinDir: string;
  interfaces: readonly string[];
  nodeName: string;
  procSysNet: string;
  /** Where the VIPs this agent put on lo are remembered, so a restart removes the ones no longer served. */
  stateDir: string;
  /** The LB nodes' Maglev sizing and hash seed: the previous tables must be theirs. */
  maglev: MaglevSizing;
  hashSeed: number;
  /** How long a previous table is kept (0: no hand-off; default PREVIOUS_TABLE_KEEP_MS). */
  handoffMs?: number;
  isOurService: (svc: Service) => boolean;
  log: Pick<Logger, 'info' | 'warn'>;
}

export class BackendRoleController implements AgentController<BackendRoleKind> {
  readonly name = 'dsr-backend';
  readonly kinds = BACKEND_ROLE_KINDS as ReadonlySet<BackendRoleKind>;
  private decap: LoadedDecap | undefined;
  /** VIPs this agent put on lo (removed again when no longer served). */
  private readonly onLo = new Set<string>();
  /** The VIP list last written to the state file. */
  private rememberedText = '';
  private readonly previous: PreviousTables;
  private expiryTimer: NodeJS.Timeout | undefined;

  constructor(private readonly o: BackendRoleOptions) {
    this.previous = new PreviousTables(o.handoffMs ?? PREVIOUS_TABLE_KEEP_MS, o.maglev);
  }

  /** Loads and attaches the decapsulation program, and makes the host ARP-silent for lo's addresses. */
  start(): Array<{ interface: string; ifindex: number }> {
    for (const vip of this.remembered()) this.onLo.add(vip);
    this.decap = loadDecap({ addon: this.o.addon, pinDir: this.o.pinDir, hashSeed: this.o.hashSeed });
    // A previous agent's tables are pinned but their times are gone with it: start without any.
    this.decap.setPreviousTables([]);
    for (const scope of ['all', ...this.o.interfaces]) {
      writeFileSync(join(this.o.procSysNet, 'ipv4', 'conf', scope, 'arp_ignore'), '1');
      writeFileSync(join(this.o.procSysNet, 'ipv4', 'conf', scope, 'arp_announce'), '2');
    }
    return this.o.interfaces.map((name) => ({ interface: name, ifindex: this.decap!.attach(name) }));
  }

  get loaded(): LoadedDecap | undefined {
    return this.decap;
  }

  async reconcile(snap: SnapshotOf<BackendRoleKind>, _changes?: ChangeSet): Promise<void> {
    if (!this.decap) return;
    const local = hostAddresses(this.onLo);
    const vips = servedVips(snap.services.values(), snap.endpointSlices.values(), { nodeName: this.o.nodeName, localAddresses: local, isOurService: this.o.isOurService });
    this.decap.setNodeAddresses(local);
    // Previous tables before anything new is served here: a moved flow's first packet must find its owner.
    const bySvc = slicesByService(snap.endpointSlices.values());
    const frontends = [...snap.services.values()].flatMap((svc) => frontendsForService(svc, bySvc.get(objectKey(svc.meta)) ?? [], { nodeName: this.o.nodeName, isOurService: this.o.isOurService, nodeAddresses: [] }));
    if (this.previous.update(frontends, Date.now())) this.publishPrevious();
    // The VIP first on lo, then in the map: a decapsulated packet must find its socket.
    for (const vip of vips) {
      if (this.onLo.has(vip)) continue;
      await this.ip(['addr', 'replace', `${vip}/${vip.includes(':') ? 128 : 32}`, 'dev', 'lo']);
      this.onLo.add(vip);
    }
    const { added, removed } = this.decap.setVips(vips);
    for (const vip of [...this.onLo]) {
      if (vips.has(vip)) continue;
      await this.ip(['addr', 'del', `${vip}/${vip.includes(':') ? 128 : 32}`, 'dev', 'lo']).catch(() => undefined);
      this.onLo.delete(vip);
    }
    this.remember();
    if (added.length || removed.length) this.o.log.info('DSR backend: served service addresses changed', { added: added.join(',') || undefined, removed: removed.join(',') || undefined, serving: vips.size });
  }

  /** Writes the previous tables and arms the timer that drops the next one to expire. */
  private publishPrevious(): void {
    this.decap?.setPreviousTables(this.previous.tables());
    clearTimeout(this.expiryTimer);
    const next = this.previous.nextExpiry();
    if (next === Infinity) return;
    this.expiryTimer = setTimeout(() => {
      if (this.previous.expire(Date.now())) this.publishPrevious();
    }, Math.max(0, next - Date.now()) + 10);
    this.expiryTimer.unref();
  }

  stop(): void {
    clearTimeout(this.expiryTimer);
    // Left attached with its pinned maps, the VIPs left on lo: a restarted agent finds them serving (no packet lost).
    this.decap?.close();
  }

  private get stateFile(): string {
    return join(this.o.stateDir, 'dsr-backend-vips.json');
  }

  /** The VIPs a previous run put on lo (none when it left no record). */
  private remembered(): string[] {
    try {
      const list: unknown = JSON.parse(readFileSync(this.stateFile, 'utf8'));
      return Array.isArray(list) ? list.filter((v): v is string => typeof v === 'string') : [];
    } catch {
      return [];
    }
  }

  private remember(): void {
    const text = JSON.stringify([...this.onLo].sort());
    // Written when the set changed, not on every pass.
    if (text === this.rememberedText) return;
    try {
      writeFileSync(`${this.stateFile}.tmp`, text);
      renameSync(`${this.stateFile}.tmp`, this.stateFile);
      this.rememberedText = text;
    } catch (err) {
      this.o.log.warn('DSR backend: cannot record the VIPs on lo (a restart will not remove stale ones)', { file: this.stateFile, error: (err as Error).message });
    }
  }

  private async ip(args: string[]): Promise<void> {
    try {
      await run('ip', args);
    } catch (err) {
      this.o.log.warn('DSR backend: ip command failed', { command: `ip ${args.join(' ')}`, error: (err as Error).message });
      throw err;
    }
  }
}

/** This host's unicast addresses, without loopback ones and the VIPs this agent itself put on lo. */
function hostAddresses(vips: ReadonlySet<string>): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.internal || vips.has(a.address) || a.address.startsWith('fe80:')) continue;
      out.add(a.address);
    }
  }
  return out;
}
