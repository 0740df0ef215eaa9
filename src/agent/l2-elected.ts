/**
 * The L2 controller of Kubernetes mode: the lease election
 * (src/l2/election.ts) decides which services this node announces; the
 * announcer programs the responder and sends gratuitous ARP/NA for exactly
 * those. Interfaces are polled (sysfs, cheap) so a link going down withdraws
 * its announcements and hands the lease over within one poll.
 */
import type { Snapshot, Store } from '../store/store.js';
import type { Announcement, L2Announcer, RefusedAddress } from '../l2/announcer.js';
import { L2CandidateCache, L2EligibleCache, l2AnnouncedAddresses, nodeLabels, type L2Candidate, type NodeInterface } from '../l2/policy.js';
import { L2Election, type L2ElectionOptions } from '../l2/election.js';
import { serviceLeaseName } from '../l2/election-core.js';
import type { L2View } from '../metrics/state-view.js';
import type { AgentController, ChangeSet } from './controller.js';
import { readInterfaces } from './interfaces.js';
import { L2_KINDS, LocalRecord, makeAnnouncer, programmedOnly, toAnnouncements, type L2Common } from './l2.js';

const INTERFACE_POLL_MS = 100;

/** The election's own settings pass through; the retry period becomes its grace period. */
export interface ElectedL2Options extends L2Common,
  Pick<L2ElectionOptions, 'namespace' | 'writer' | 'nodeWriter' | 'nodeLeaseMs' | 'nodeRenewMs' | 'serviceLeaseMs'> {
  retryMs: number;
  store: Store;
  /** The data path is attached on every interface: without it this node competes for nothing. */
  datapathReady: () => boolean;
  onNodeRenewed: (sentAtNs: bigint) => void;
}

/** Kubernetes mode: leases decide. */
export class ElectedL2Controller implements AgentController {
  readonly name = 'l2';
  readonly kinds = L2_KINDS;
  private readonly announcer: L2Announcer;
  private readonly record: LocalRecord;
  readonly election: L2Election;
  private readonly candidateCache = new L2CandidateCache();
  private readonly eligibleCache = new L2EligibleCache();
  /** Whether each cache saw the previous pass (only then may it take that pass's changes alone). */
  private cachesCurrent = { candidates: false, eligible: false };
  /** The candidates this node competes for (policy, interfaces, local endpoints, programmed), by service. */
  private candidates = new Map<string, L2Candidate>();
  private chosen?: L2Candidate[];
  private interfaces: NodeInterface[] = [];
  private interfaceKey = '';
  private pollTimer?: NodeJS.Timeout;
  private electing = false;
  private electionCandidates: { service: string; lease: string }[] = [];
  /** Lease name of each candidate (a hash for long names: computed once per service). */
  private leaseNames = new Map<string, string>();
  /** What applyAnnouncements last acted on: the election's list and the candidates it was mapped with. */
  private applied?: { announce: readonly string[]; candidates: Map<string, L2Candidate> };

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
      onChange: () => this.applyAnnouncements(),
    });
  }

  start(): void {
    this.interfaces = (this.c.interfaceReader ?? readInterfaces)(this.c.interfaceNames);
    this.interfaceKey = JSON.stringify(this.interfaces);
    this.pollTimer = setInterval(() => this.pollInterfaces(), INTERFACE_POLL_MS);
  }

  private pollInterfaces(): void {
    const now = (this.c.interfaceReader ?? readInterfaces)(this.c.interfaceNames);
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
  reconcile(snap: Snapshot, changes?: ChangeSet): void {
    if (!this.c.store.synced) {
      this.cachesCurrent = { candidates: false, eligible: false };
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
      this.candidates = new Map(chosen.map((c) => [c.service, c]));
      const names = new Map<string, string>();
      this.electionCandidates = chosen.map((c) => {
        const lease = this.leaseNames.get(c.service) ?? serviceLeaseName(c.service);
        names.set(c.service, lease);
        return { service: c.service, lease };
      });
      this.leaseNames = names;
    }
    const eligible = this.eligibleCache.compute(snap, nodeNames, this.c.isOurService, this.cachesCurrent.eligible ? changes : undefined);
    this.cachesCurrent.eligible = true;
    this.election.update({ candidates: this.electionCandidates, eligible, leases: snap.leases.values() });
    this.applyAnnouncements();
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
    const announce = this.election.output?.announce ?? [];
    const applied = this.applied;
    if (applied && applied.candidates === this.candidates && sameStrings(applied.announce, announce)) return;
    this.applied = { announce, candidates: this.candidates };
    const chosen: L2Candidate[] = [];
    for (const s of announce) {
      const c = this.candidates.get(s);
      if (c) chosen.push(c);
    }
    const announcements: Announcement[] = toAnnouncements(chosen);
    this.record.track(announcements);
    this.announcer.update(announcements);
  }

  /** Every service some policy announces, whoever holds it. */
  rows(snap: Snapshot): L2View[] {
    const out: L2View[] = [];
    for (const [service, addresses] of l2AnnouncedAddresses(snap, this.c.isOurService)) {
      const view = this.election.leaseView(this.leaseNames.get(service) ?? serviceLeaseName(service));
      for (const address of addresses) {
        const local = this.record.since.has(`${service}|${address}`);
        out.push({
          service, address, local,
          holder: view?.holder ?? '',
          interfaces: local ? this.announcer.interfacesOf(address) : [],
          ...(view?.acquireTime ? { since: view.acquireTime } : {}),
          transitions: view?.transitions ?? 0,
        });
      }
    }
    return out;
  }

  async stop(): Promise<void> {
    clearInterval(this.pollTimer);
    // Stop answering first, then hand every lease over.
    this.announcer.stop();
    this.record.track([]);
    await this.election.stop();
  }
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  return a === b || (a.length === b.length && a.every((x, i) => x === b[i]));
}
