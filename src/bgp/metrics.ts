/**
 * What the speaker shows users: the `/v1/state` views behind `pharos bgp
 * peers` / `pharos bgp routes`, and the `pharos_bgp_*` metrics, read from
 * the speaker when Prometheus scrapes (nothing is polled).
 */
import client from 'prom-client';
import type { BgpPeerBfdView, BgpPeerView, BgpRouteView } from '../metrics/state-view.js';
import { describeDiag } from './bfd.js';
import type { BgpSpeaker, PeerStatus } from './speaker.js';

/** The BFD part of a peer's view; `lastTransitionAt` is on the monotonic clock, turned into wall time here. */
function bfdView(p: PeerStatus, now: number): BgpPeerBfdView | undefined {
  const b = p.bfd;
  if (!b) return undefined;
  return {
    state: b.state,
    remoteState: b.remoteState,
    diagnostic: describeDiag(b.diag),
    localDiscriminator: b.localDiscriminator,
    remoteDiscriminator: b.remoteDiscriminator,
    txIntervalMs: b.txIntervalMs,
    detectionTimeMs: b.detectionTimeMs,
    transitions: b.transitions,
    ...(b.lastTransitionAt !== undefined ? { lastTransitionAt: new Date(now - (performance.now() - b.lastTransitionAt)).toISOString() } : {}),
    bgpDrops: p.bfdDrops,
    ...(b.error ? { error: b.error } : {}),
  };
}

export function bgpPeerViews(speaker: BgpSpeaker, now = Date.now()): BgpPeerView[] {
  return speaker.status(now).map((p) => ({
    peer: p.id,
    asn: p.peerAsn,
    localAsn: p.localAsn,
    state: p.state,
    uptimeSeconds: p.uptimeSeconds,
    prefixesSent: p.prefixesSent,
    prefixesReceived: p.prefixesReceived,
    ...(p.lastError ? { lastError: p.lastError } : {}),
    ...(p.bfd ? { bfd: bfdView(p, now)! } : {}),
  }));
}

/** One row per prefix, with every peer it is advertised to. */
export function bgpRouteViews(speaker: BgpSpeaker): BgpRouteView[] {
  const byPrefix = new Map<string, BgpRouteView>();
  for (const r of speaker.advertised()) {
    let view = byPrefix.get(r.prefix);
    if (!view) {
      view = {
        prefix: r.prefix,
        nextHop: r.nextHop,
        peers: [],
        communities: [...r.communities, ...r.largeCommunities],
        ...(r.services?.length ? { service: r.services.join(',') } : {}),
      };
      byPrefix.set(r.prefix, view);
    }
    view.peers.push(r.peer);
  }
  return [...byPrefix.values()].sort((a, b) => (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : 0));
}

/**
 * Registers the BGP metrics on `registry`, reading `getSpeaker()` at scrape
 * time (it may be undefined while no speaker runs).
 */
export function registerBgpMetrics(registry: client.Registry, getSpeaker: () => BgpSpeaker | undefined): void {
  const peers = (): ReturnType<BgpSpeaker['status']> => getSpeaker()?.status() ?? [];
  new client.Gauge({
    name: 'pharos_bgp_session_up',
    help: 'BGP session state per neighbor: 1 when Established',
    labelNames: ['peer', 'peer_asn'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const p of peers()) this.set({ peer: p.id, peer_asn: String(p.peerAsn) }, p.state === 'Established' ? 1 : 0);
    },
  });
  /** One sample per neighbor (label `peer`), read at scrape time. */
  const perPeer = (Metric: typeof client.Gauge | typeof client.Counter, name: string, help: string, value: (p: PeerStatus) => number): void => {
    new Metric({
      name, help, labelNames: ['peer'] as const, registers: [registry],
      collect(this: client.Gauge<'peer'> | client.Counter<'peer'>) {
        this.reset();
        for (const p of peers()) {
          if ('set' in this) this.set({ peer: p.id }, value(p));
          else this.inc({ peer: p.id }, value(p));
        }
      },
    });
  };
  /** A message counter per neighbor and direction (sent, received). */
  const perPeerDirection = (name: string, help: string, sent: (p: PeerStatus) => number, received: (p: PeerStatus) => number): void => {
    new client.Counter({
      name, help, labelNames: ['peer', 'direction'] as const, registers: [registry],
      collect() {
        this.reset();
        for (const p of peers()) {
          this.inc({ peer: p.id, direction: 'sent' }, sent(p));
          this.inc({ peer: p.id, direction: 'received' }, received(p));
        }
      },
    });
  };
  perPeer(client.Gauge, 'pharos_bgp_advertised_routes', 'Prefixes currently advertised to each neighbor', (p) => p.prefixesSent);
  perPeer(client.Gauge, 'pharos_bgp_received_routes', 'Prefixes each neighbor currently announces to us (validated, counted, not installed)', (p) => p.prefixesReceived);
  perPeerDirection('pharos_bgp_updates_total', 'BGP UPDATE messages, by neighbor and direction', (p) => p.counters.updatesSent, (p) => p.counters.updatesReceived);
  perPeerDirection('pharos_bgp_notifications_total', 'BGP NOTIFICATION messages, by neighbor and direction', (p) => p.counters.notificationsSent, (p) => p.counters.notificationsReceived);
  perPeer(client.Counter, 'pharos_bgp_session_flaps_total', 'Times a BGP session left Established', (p) => p.counters.flaps);
  // One BFD session per neighbor address, shared by the BGP sessions to it: labelled by address.
  const bfdSessions = (): Map<string, PeerStatus> => {
    const out = new Map<string, PeerStatus>();
    for (const p of peers()) if (p.bfd && !out.has(p.peerAddress)) out.set(p.peerAddress, p);
    return out;
  };
  new client.Gauge({
    name: 'pharos_bfd_session_up',
    help: 'BFD session state per neighbor address: 1 when Up',
    labelNames: ['peer'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [address, p] of bfdSessions()) this.set({ peer: address }, p.bfd!.state === 'Up' ? 1 : 0);
    },
  });
  new client.Counter({
    name: 'pharos_bfd_session_transitions_total',
    help: 'BFD session state changes per neighbor address (Down/Init/Up/AdminDown)',
    labelNames: ['peer'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [address, p] of bfdSessions()) this.inc({ peer: address }, p.bfd!.transitions);
    },
  });
  new client.Gauge({
    name: 'pharos_bfd_detection_time_seconds',
    help: 'How long a neighbor may stay silent before BFD declares it down (its multiplier x the agreed interval); 0 before it has been heard',
    labelNames: ['peer'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [address, p] of bfdSessions()) this.set({ peer: address }, p.bfd!.detectionTimeMs / 1000);
    },
  });
  new client.Counter({
    name: 'pharos_bgp_bfd_down_total',
    help: 'Times a BGP session was dropped because BFD declared its neighbor down',
    labelNames: ['peer'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const p of peers()) if (p.bfd) this.inc({ peer: p.id }, p.bfdDrops);
    },
  });
  perPeer(client.Counter, 'pharos_bgp_max_prefix_exceeded_total',
    'Times a neighbor announced more prefixes than its maxPrefixes limit (restart: session reset with Cease/Maximum Number of Prefixes Reached; drop: routes past it ignored)',
    (p) => p.counters.maxPrefixExceeded);
  perPeer(client.Counter, 'pharos_bgp_received_prefixes_dropped_total',
    'Prefixes a neighbor announced past its maxPrefixes limit and that were ignored (maxPrefixAction drop)', (p) => p.counters.prefixesDropped);
}
