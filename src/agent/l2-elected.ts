/**
 * The L2 controller of Kubernetes mode: the lease election
 * (src/l2/election.ts) decides which services this node announces; the
 * announcer programs the responder and sends gratuitous ARP/NA for exactly
 * those. Interfaces are polled (sysfs, cheap) so a link going down withdraws
 * its announcements and hands the lease over within one poll.
 */
import type { Snapshot, Store } from '../store/store.js';
import type { L2Announcer } from '../l2/announcer.js';
import { l2AnnouncedAddresses, l2Candidates, l2EligibleNodes, nodeLabels, type L2Candidate, type NodeInterface } from '../l2/policy.js';
import { L2Election, type L2ElectionOptions } from '../l2/election.js';
import { serviceLeaseName } from '../l2/election-core.js';
import type { L2View } from '../metrics/state-view.js';
import type { AgentController } from './controller.js';
import { readInterfaces } from './interfaces.js';
import { L2_KINDS, LocalRecord, makeAnnouncer, toAnnouncements, type L2Common } from './l2.js';

const INTERFACE_POLL_MS = 100;

/** The election's own settings pass through; the retry period becomes its grace period. */
export interface ElectedL2Options extends L2Common,
  Pick<L2ElectionOptions, 'namespace' | 'writer' | 'nodeWriter' | 'nodeLeaseMs' | 'nodeRenewMs' | 'serviceLeaseMs' | 'serviceRenewMs'> {
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
  private candidates = new Map<string, L2Candidate>();
  private interfaces: NodeInterface[] = [];
  private interfaceKey = '';
  private pollTimer?: NodeJS.Timeout;
  private electing = false;
  private inputKey = '';
  private inputObjects?: ReadonlyMap<string, unknown>[];
  private electionCandidates: { service: string; lease: string }[] = [];
  private eligible = new Map<string, string[]>();

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
      serviceRenewMs: c.serviceRenewMs,
      graceMs: c.retryMs,
      log: c.log.with({ controller: 'l2' }),
      onNodeRenewed: c.onNodeRenewed,
      onChange: () => this.applyAnnouncements(),
    });
  }

  start(): void {
    this.interfaces = readInterfaces(this.c.interfaceNames);
    this.interfaceKey = JSON.stringify(this.interfaces);
    this.pollTimer = setInterval(() => this.pollInterfaces(), INTERFACE_POLL_MS);
  }

  private pollInterfaces(): void {
    const now = readInterfaces(this.c.interfaceNames);
    const key = JSON.stringify(now);
    if (key === this.interfaceKey) return;
    const wentDown = this.interfaces.filter((i) => i.up && !now.find((n) => n.ifindex === i.ifindex && n.up)).map((i) => i.name);
    this.interfaces = now;
    this.interfaceKey = key;
    if (wentDown.length) this.c.log.warn('interface down: its announcements are handed over', { interfaces: wentDown.join(',') });
    this.reconcile(this.c.store.snapshot());
  }

  reconcile(snap: Snapshot): void {
    if (!this.c.store.synced) return;
    if (!this.electing) {
      // Only now does this node show itself alive: it can act on what it is assigned at once.
      this.electing = true;
      this.election.start();
    }
    const ready = this.c.datapathReady();
    const nodeNames = new Set<string>([this.c.nodeName, ...snap.nodes.keys()]);
    for (const l of snap.leases.values()) if (l.meta.name.startsWith('pharos-node-') && l.holderIdentity) nodeNames.add(l.holderIdentity);
    // Lease renewals arrive many times a second and change no candidate: recompute only on real input changes.
    const key = [ready, this.interfaceKey, [...nodeNames].sort().join(',')].join('|');
    const inputs = [snap.services, snap.endpointSlices, snap.nodes, snap.l2Policies];
    if (key !== this.inputKey || !this.inputObjects || inputs.some((m, i) => !sameObjects(m, this.inputObjects![i]!))) {
      const list = ready
        ? l2Candidates(snap, {
          nodeName: this.c.nodeName,
          nodeLabels: nodeLabels(snap.nodes.get(this.c.nodeName), this.c.nodeName),
          interfaces: this.interfaces,
          isOurService: this.c.isOurService,
        })
        : [];
      this.candidates = new Map(list.map((c) => [c.service, c]));
      this.electionCandidates = list.map((c) => ({ service: c.service, lease: serviceLeaseName(c.service) }));
      this.eligible = l2EligibleNodes(snap, nodeNames, this.c.isOurService);
      this.inputKey = key;
      this.inputObjects = inputs;
    }
    this.election.update({ candidates: this.electionCandidates, eligible: this.eligible, leases: snap.leases.values() });
    this.applyAnnouncements();
  }

  private applyAnnouncements(): void {
    const announce = this.election.output?.announce ?? [];
    const chosen = announce.map((s) => this.candidates.get(s)).filter((c): c is L2Candidate => c !== undefined);
    const announcements = toAnnouncements(chosen);
    this.record.track(announcements);
    this.announcer.update(announcements);
  }

  /** Every service some policy announces, whoever holds it. */
  rows(snap: Snapshot): L2View[] {
    const held = this.announcer.heldAddresses();
    const out: L2View[] = [];
    for (const [service, addresses] of l2AnnouncedAddresses(snap, this.c.isOurService)) {
      const view = this.election.leaseView(serviceLeaseName(service));
      for (const address of addresses) {
        const local = this.record.since.has(`${service}|${address}`);
        out.push({
          service, address, local,
          holder: view?.holder ?? '',
          interfaces: local ? held.filter((h) => h.address === address).map((h) => h.interface) : [],
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

/** Same keys and the very same objects (the store replaces an object only when it changed). */
function sameObjects(a: ReadonlyMap<string, unknown>, b: ReadonlyMap<string, unknown>): boolean {
  if (a === b) return true;
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}
