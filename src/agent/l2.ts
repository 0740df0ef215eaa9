/**
 * The L2 controller of manifests mode (one node: it holds every address its
 * policies select, no leases), and what it shares with the Kubernetes-mode
 * controller (l2-elected.ts): the announcer and the per-address record.
 */
import type { Kind, Service } from '../model/types.js';
import type { Snapshot } from '../store/store.js';
import { L2Announcer, type Announcement, type L2Sink } from '../l2/announcer.js';
import { l2Candidates, nodeLabels, type L2Candidate } from '../l2/policy.js';
import type { L2View } from '../metrics/state-view.js';
import type { AgentController } from './controller.js';
import type { Logger } from './log.js';
import { readInterfaces } from './interfaces.js';

export const L2_KINDS: ReadonlySet<Kind> = new Set<Kind>(['Service', 'EndpointSlice', 'Node', 'L2AnnouncementPolicy', 'Lease']);

export interface L2Counters {
  gratuitousSent: { ipv4: number; ipv6: number };
  l2Errors: number;
  leaseTransitions: number;
}

export interface L2Common {
  nodeName: string;
  interfaceNames: string[];
  sink: L2Sink;
  isOurService: (svc: Service) => boolean;
  counters: L2Counters;
  log: Logger;
}

export function makeAnnouncer(c: L2Common): L2Announcer {
  return new L2Announcer(c.sink, {
    onSent: (family) => c.counters.gratuitousSent[family]++,
    onError: (err, address, iface) => {
      c.counters.l2Errors++;
      c.log.warn('L2 announcement failed', { address, interface: iface, error: err.message });
    },
  });
}

/** Keeps since/transitions per (service, address) this node announces, and logs changes. */
export class LocalRecord {
  readonly since = new Map<string, string>();
  readonly transitions = new Map<string, number>();

  constructor(private readonly log: Logger, private readonly counters: L2Counters) {}

  track(announcements: Announcement[]): void {
    const now = new Date().toISOString();
    const live = new Set<string>();
    for (const a of announcements) {
      const key = `${a.service}|${a.address}`;
      live.add(key);
      if (!this.since.has(key)) {
        this.since.set(key, now);
        this.transitions.set(key, (this.transitions.get(key) ?? 0) + 1);
        this.counters.leaseTransitions++;
        this.log.info('announcing address', { service: a.service, address: a.address, interfaces: a.interfaces.map((i) => i.name).join(',') });
      }
    }
    for (const key of [...this.since.keys()]) {
      if (live.has(key)) continue;
      this.since.delete(key);
      const [service, address] = key.split('|');
      this.log.info('stopped announcing address', { service, address });
    }
  }
}

export function toAnnouncements(candidates: L2Candidate[]): Announcement[] {
  return candidates.flatMap((c) => c.addresses.map((address) => ({ service: c.service, address, interfaces: c.interfaces })));
}

/** Manifests mode: one node, always the holder. */
export class LocalL2Controller implements AgentController {
  readonly name = 'l2';
  readonly kinds = L2_KINDS;
  private readonly announcer: L2Announcer;
  private readonly record: LocalRecord;

  constructor(private readonly c: L2Common) {
    this.announcer = makeAnnouncer(c);
    this.record = new LocalRecord(c.log, c.counters);
  }

  reconcile(snap: Snapshot): void {
    const interfaces = readInterfaces(this.c.interfaceNames);
    const candidates = l2Candidates(snap, {
      nodeName: this.c.nodeName,
      nodeLabels: nodeLabels(snap.nodes.get(this.c.nodeName), this.c.nodeName),
      interfaces,
      isOurService: this.c.isOurService,
    });
    const announcements = toAnnouncements(candidates);
    this.record.track(announcements);
    this.announcer.update(announcements);
  }

  rows(_snap?: Snapshot): L2View[] {
    const held = this.announcer.heldAddresses();
    return [...this.record.since.entries()].map(([key, since]) => {
      const [service, address] = key.split('|') as [string, string];
      return {
        service, address, since, local: true, holder: this.c.nodeName,
        interfaces: held.filter((h) => h.address === address).map((h) => h.interface),
        transitions: this.record.transitions.get(key) ?? 0,
      };
    });
  }

  stop(): void {
    // Manifests mode keeps answering through a restart until the liveness stamp goes stale.
  }
}
