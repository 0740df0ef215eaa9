/**
 * The L2 controller of Kubernetes mode: the lease election
 * (src/l2/election.ts) decides which addresses this node announces — one
 * lease per address, shared by every service that carries it — and the
 * announcer programs the responder and sends gratuitous ARP/NA for exactly
 * those, on the interfaces of this node's candidate services of each. Interfaces are polled (sysfs, cheap) so a link going down withdraws
 * its announcements and hands the lease over within one poll.
 */
import type { SnapshotOf, Store } from '../store/store.js';
import { drainReason, type DrainReason } from '../model/drain.js';
import type { Announcement, L2Announcer, RefusedAddress } from './announcer.js';
import { L2_KINDS, L2AddressCache, L2CandidateCache, L2EligibleCache, l2AnnouncedAddresses, nodeLabels, type L2Candidate, type L2Kind } from './policy.js';
import { L2Election, type L2ElectionOptions } from './election.js';
import { OutageGuard, type ForeignAnswer } from './outage.js';
import type { Claim } from './outage-core.js';
import { addressElectorates, addressLeaseName, type AddressCandidate } from './election-core.js';
import type { L2View } from '../metrics/state-view.js';
import { countAddressesWithoutHolder, type WithoutHolderReason } from './holders.js';
import type { AgentController, ChangeSet } from '../store/controller.js';
import { LocalRecord, makeAnnouncer, programmedOnly, toAnnouncements, type L2Common } from './local-controller.js';
import type { NodeInterface } from '../model/types.js';

const INTERFACE_POLL_MS = 100;

/** The election's own settings pass through; the retry period becomes its grace period. */
export interface ElectedL2Options extends L2Common,
  Pick<L2ElectionOptions, 'namespace' | 'writer' | 'nodeWriter' | 'nodeLeaseMs' | 'nodeRenewMs' | 'serviceLeaseMs'> {
  retryMs: number;
  store: Store;
  /** The data path is attached on every interface: without it this node competes for nothing. */
  datapathReady: () => boolean;
  onNodeRenewed: (sentAtNs: bigint) => void;
  /** UDP port of the peer heartbeats (0, the default: none). */
  peerPort?: number;
  peerTimeoutMs?: number;
  /** Foreign answers the XDP program noted for our addresses (bpf/lib/l2_foreign.h). */
  readForeign?: () => ForeignAnswer[];
  /** Refresh the responder's liveness stamp (while answering through an API outage). */
  stampLiveness?: () => void;
}

/** Kubernetes mode: leases decide. */
export class ElectedL2Controller implements AgentController<L2Kind> {
  readonly name = 'l2';
  readonly kinds = L2_KINDS;
  private readonly announcer: L2Announcer;
  private readonly record: LocalRecord;
  readonly election: L2Election;
  /** Who answers while the API is unreachable, and yielding after a partition heals (src/l2/outage.ts). */
  readonly outage: OutageGuard;
  private peerClaimed: ReadonlySet<string> = new Set();
  private outageServed: ReadonlySet<string> = new Set();
  private readonly candidateCache = new L2CandidateCache();
  private readonly eligibleCache = new L2EligibleCache();
  private readonly addressCache = new L2AddressCache();
  /** Whether each cache saw the previous pass (only then may it take that pass's changes alone). */
  private cachesCurrent = { candidates: false, eligible: false, addresses: false };
  /** This node's candidate services (policy, interfaces, local endpoints, programmed) of each address it competes for. */
  private candidates = new Map<string, L2Candidate[]>();
  private chosen?: L2Candidate[];
  private interfaces: NodeInterface[] = [];
  private interfaceKey = '';
  private pollTimer?: NodeJS.Timeout;
  private electing = false;
  private draining: ReadonlySet<string> = new Set();
  private drainSelf: DrainReason | undefined;
  /** Foreign-answer counts per address as of the end of this node's last drain (foreignOutsideDrain). */
  private readonly foreignBaseline = new Map<string, number>();
  private electionCandidates: AddressCandidate[] = [];
  /** Lease name of each address (computed once per address). */
  private leaseNames = new Map<string, string>();
  /** Eligible nodes by address (the union over the services that carry it), and the maps it was computed from. */
  private eligibleByAddress?: { eligible: Map<string, string[]>; byService: Map<string, string[]>; byAddress: Map<string, readonly string[]> };
  /** Every service's announced addresses as of the last pass (for addressesWithoutHolder). */
  private serviceAddresses?: Map<string, string[]>;
  /** What applyAnnouncements last acted on: the election's list and the candidates it was mapped with. */
  private applied?: { announce: readonly string[]; candidates: Map<string, L2Candidate[]> };

  constructor(private readonly c: ElectedL2Options) {
    this.announcer = makeAnnouncer(c);
    this.record = new LocalRecord(c.log, c.counters);
    this.election = new L2Election({
      node: c.nodeName,
      namespace: c.namespace,
      writer: c.writer,
      nodeWriter: c.nodeWriter,
      nodeLeaseMs: c.nodeLeaseMs,
      nodeRenewMs: c.nodeRenewMs,
      serviceLeaseMs: c.serviceLeaseMs,
      graceMs: c.retryMs,
      log: c.log.with({ controller: 'l2' }),
      onNodeRenewed: c.onNodeRenewed,
      onChange: () => this.outage.tick(),
      outage: () => ({ peerClaimed: this.peerClaimed, outageServed: this.outageServed }),
    });
    this.outage = new OutageGuard({
      node: c.nodeName,
      port: c.peerPort ?? 0,
      interfaces: c.interfaceNames,
      peerTimeoutMs: c.peerTimeoutMs ?? 1000,
      log: c.log.with({ controller: 'l2' }),
      view: () => this.outageView(),
      readForeign: () => this.foreignOutsideDrain(c.readForeign ?? (() => [])),
      onChange: () => this.applyAnnouncements(),
      stampLiveness: c.stampLiveness ?? (() => undefined),
    });
  }

  /** What the outage rules read of the election (outage-core.ts HoldInput). */
  private outageView(): ReturnType<ConstructorParameters<typeof OutageGuard>[0]['view']> {
    const election = this.election;
    const claimOf = (lease: string): Claim => ({ rv: election.heldLeases().get(lease)?.resourceVersion ?? '', takeovers: 0 });
    const electionAnnounce = new Map<string, Claim>();
    for (const address of election.output?.announce ?? []) electionAnnounce.set(address, claimOf(this.leaseName(address)));
    const held = new Map<string, Claim>();
    for (const [lease, h] of election.heldLeases()) held.set(h.address, claimOf(lease));
    // Before the first renewal (start-up) there is no outage, and nothing held either.
    const apiReachable = election.healthy || election.lastRenewal === -Infinity;
    const leases = new Map<string, { holder?: string; rv: string; lease: string }>();
    // Lease records matter for outage takeovers and their resolution only: skipped in the common case.
    if (!apiReachable || this.outageServed.size > 0) {
      for (const { address, lease } of this.electionCandidates) {
        const r = election.leaseRecord(lease);
        if (r) leases.set(address, { ...(r.holder ? { holder: r.holder } : {}), rv: r.resourceVersion, lease });
      }
    }
    const out = { apiReachable, electionAnnounce, held, candidates: new Set(this.candidates.keys()), leases, eligible: this.eligibleByAddress?.byAddress ?? new Map() };
    this.peerClaimed = this.outage.peerClaimed((a) => this.leaseName(a));
    this.outageServed = new Set([...this.outage.outageServed()].map((a) => this.leaseName(a)));
    return out;
  }

  start(): void {
    void this.outage.start();
    this.interfaces = this.c.interfaceReader(this.c.interfaceNames);
    this.interfaceKey = JSON.stringify(this.interfaces);
    this.pollTimer = setInterval(() => this.pollInterfaces(), INTERFACE_POLL_MS);
  }

  private pollInterfaces(): void {
    const now = this.c.interfaceReader(this.c.interfaceNames);
    const key = JSON.stringify(now);
    if (key === this.interfaceKey) return;
    const wentDown = this.interfaces.filter((i) => i.up && !now.find((n) => n.ifindex === i.ifindex && n.up)).map((i) => i.name);
    this.interfaces = now;
    this.interfaceKey = key;
    if (wentDown.length) this.c.log.warn('interface down: its announcements are handed over', { interfaces: wentDown.join(',') });
    this.reconcile(this.c.store.snapshot());
  }

  /**
   * Lease renewals arrive many times a second and change no candidate: the
   * caches answer those passes from `changes` (or by comparing references,
   * per service, without it), and the election gets the very same candidate
   * list and eligible map.
   */
  reconcile(snap: SnapshotOf<L2Kind>, changes?: ChangeSet): void {
    if (!this.c.store.synced) {
      this.cachesCurrent = { candidates: false, eligible: false, addresses: false };
      return;
    }
    if (!this.electing) {
      // Only now does this node show itself alive: it can act on what it is assigned at once.
      this.electing = true;
      this.election.start();
    }
    const ready = this.c.datapathReady();
    const nodeNames = new Set<string>([this.c.nodeName, ...snap.nodes.keys()]);
    for (const l of snap.leases.values()) if (l.holderIdentity && l.meta.name.startsWith('pharos-node-')) nodeNames.add(l.holderIdentity);
    const candidates = ready
      ? this.candidateCache.compute(snap, {
        nodeName: this.c.nodeName,
        nodeLabels: nodeLabels(snap.nodes.get(this.c.nodeName), this.c.nodeName),
        interfaces: this.interfaces,
        isOurService: this.c.isOurService,
      }, this.cachesCurrent.candidates ? changes : undefined)
      : [];
    // A cache not asked on this pass has not seen its changes: the next pass gives it none (a full look).
    this.cachesCurrent.candidates = ready;
    // Not carried by the data path: not competed for (a held lease is released at once, and another node takes it).
    const chosen = programmedOnly(candidates, this.c.isProgrammed, this.chosen);
    if (chosen !== this.chosen) {
      this.chosen = chosen;
      const byAddress = new Map<string, L2Candidate[]>();
      for (const c of chosen) {
        for (const address of c.addresses) {
          const list = byAddress.get(address);
          if (list) list.push(c);
          else byAddress.set(address, [c]);
        }
      }
      this.candidates = byAddress;
      this.electionCandidates = [...byAddress.keys()].map((address) => ({ address, lease: this.leaseName(address) }));
    }
    const eligible = this.eligibleCache.compute(snap, nodeNames, this.c.isOurService, this.cachesCurrent.eligible ? changes : undefined);
    this.cachesCurrent.eligible = true;
    // Every service's announced addresses, whoever holds them (what binds services into one election per address).
    const serviceAddresses = this.addressCache.compute(snap, this.c.isOurService, this.cachesCurrent.addresses ? changes : undefined);
    this.cachesCurrent.addresses = true;
    this.serviceAddresses = serviceAddresses;
    this.election.update({ candidates: this.electionCandidates, eligible: this.addressEligible(eligible, serviceAddresses), serviceAddresses, leases: snap.leases.values(), draining: this.drainingNodes(snap) });
    this.applyAnnouncements();
  }

  /** Nodes labelled lb.pharos.io/drain or cordoned (src/model/drain.ts): the same set object while it does not change. */
  private drainingNodes(snap: SnapshotOf<L2Kind>): ReadonlySet<string> {
    const now = new Set<string>();
    for (const [name, node] of snap.nodes) if (drainReason(node)) now.add(name);
    const was = this.draining;
    if (was.size === now.size && [...now].every((n) => was.has(n))) return was;
    const mine = drainReason(snap.nodes.get(this.c.nodeName));
    if (mine !== this.drainSelf) {
      if (mine) this.c.log.info('node draining: L2 addresses are handed to other nodes before this one stops answering', { reason: mine });
      else if (this.drainSelf) this.c.log.info('node no longer draining: competes for L2 addresses again', { was: this.drainSelf });
      this.drainSelf = mine;
    }
    return (this.draining = now);
  }

  /**
   * Foreign answers, less those seen while this node drains: its successors'
   * gratuitous ARP/NA for the addresses it hands over are expected there, not
   * a split brain (no warning, no pharos_l2_duplicate_answers_total, no
   * alert). Counts are cumulative in the pinned map, so what was seen during
   * the drain becomes a baseline subtracted afterwards.
   */
  private foreignOutsideDrain(read: () => ForeignAnswer[]): ForeignAnswer[] {
    const all = read();
    if (this.drainSelf) {
      for (const f of all) this.foreignBaseline.set(f.address, f.count);
      return [];
    }
    if (this.foreignBaseline.size === 0) return all;
    const out: ForeignAnswer[] = [];
    for (const f of all) {
      const base = this.foreignBaseline.get(f.address);
      if (base === undefined) out.push(f);
      else if (f.count < base) {
        // The record was reset (entry removed and written again): counted from zero.
        this.foreignBaseline.delete(f.address);
        out.push(f);
      } else if (f.count > base) out.push({ ...f, count: f.count - base });
    }
    return out;
  }

  /** Why this node is draining (labelled or cordoned), if it is. */
  get drain(): DrainReason | undefined {
    return this.drainSelf;
  }

  private leaseName(address: string): string {
    let name = this.leaseNames.get(address);
    if (name === undefined) {
      // A memo, not a record: bounded however many addresses come and go.
      if (this.leaseNames.size >= 200_000) this.leaseNames.clear();
      this.leaseNames.set(address, (name = addressLeaseName(address)));
    }
    return name;
  }

  /** Who may compete for each address: any node eligible for one of the services that carry it. */
  private addressEligible(eligible: Map<string, string[]>, byService: Map<string, string[]>): Map<string, readonly string[]> {
    const e = this.eligibleByAddress;
    if (e && e.eligible === eligible && e.byService === byService) return e.byAddress;
    const byAddress = addressElectorates(eligible, byService);
    this.eligibleByAddress = { eligible, byService, byAddress };
    return byAddress;
  }

  /** The data path's programmed set changed: compete for what it now carries, hand over what it no longer does. */
  programmedChanged(): void {
    this.reconcile(this.c.store.snapshot());
  }

  /** Addresses whose responder entry could not be written (not announced there). */
  refused(): RefusedAddress[] {
    return this.announcer.refused();
  }

  /** (address, interface) pairs answered, still to be written, refused, and answered but not yet announced once (for metrics). */
  announcementCounts(): ReturnType<L2Announcer['counts']> {
    return this.announcer.counts();
  }

  private applyAnnouncements(): void {
    const announce = this.outage.announced();
    const applied = this.applied;
    if (applied && applied.candidates === this.candidates && sameStrings(applied.announce, announce)) return;
    this.applied = { announce, candidates: this.candidates };
    const announcements: Announcement[] = [];
    for (const address of announce) {
      // Every candidate service of the address here: one answer, listed under each service.
      for (const c of this.candidates.get(address) ?? []) for (const a of toAnnouncements([c])) if (a.address === address) announcements.push(a);
    }
    this.record.track(announcements);
    this.announcer.update(announcements);
  }

  /** Every service some policy announces, whoever holds it: one row per service and address (the holder is the address's). */
  rows(snap: SnapshotOf<L2Kind>): L2View[] {
    const out: L2View[] = [];
    for (const [service, addresses] of l2AnnouncedAddresses(snap, this.c.isOurService)) {
      for (const address of addresses) {
        const view = this.election.leaseView(this.leaseName(address));
        const local = this.record.since.has(`${service}|${address}`);
        out.push({
          service, address, local,
          holder: view?.holder ?? '',
          interfaces: local ? this.announcer.interfacesOf(address) : [],
          ...(view?.acquireTime ? { since: view.acquireTime } : {}),
          transitions: view?.transitions ?? 0,
          state: this.outage.stateOf(address) || this.drainState(address, local),
          ...(this.outage.duplicates.has(address) ? { duplicate: this.outage.duplicates.get(address)! } : {}),
        });
      }
    }
    return out;
  }

  /**
   * Announced addresses no live node holds, by reason (holders.ts),
   * as this node sees the cluster's leases; undefined while its view is not
   * fresh (API unreachable, or before the first pass): it cannot tell then.
   */
  addressesWithoutHolder(): Record<WithoutHolderReason, number> | undefined {
    const out = this.election.output;
    if (!out || !this.serviceAddresses || !this.election.viewFresh) return undefined;
    const live = new Set(out.liveNodes);
    const eligible = this.eligibleByAddress?.byAddress;
    return countAddressesWithoutHolder({
      addresses: [...this.serviceAddresses.values()].flat(),
      holderOf: (address) => this.election.leaseView(this.leaseName(address))?.holder,
      isLive: (node) => live.has(node),
      eligibleOf: (address) => eligible?.get(address),
      draining: this.draining,
    });
  }

  private drainState(address: string, local: boolean): string {
    if (this.election.handingOver(address)) return 'draining: handed over, answering a moment longer';
    return this.drainSelf && local ? 'draining: to be handed over' : '';
  }

  async stop(): Promise<void> {
    clearInterval(this.pollTimer);
    // Stop answering first, then hand every lease over (and say so to the peers: they may take them at once).
    this.announcer.stop();
    this.record.track([]);
    await Promise.all([this.outage.stop(), this.election.stop()]);
  }
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  return a === b || (a.length === b.length && a.every((x, i) => x === b[i]));
}
