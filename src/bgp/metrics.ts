/**
 * What the speaker shows users: the `/v1/state` views behind `pharos bgp
 * peers` / `pharos bgp routes`, and the `pharos_bgp_*` metrics, read from
 * the speaker when Prometheus scrapes (nothing is polled).
 */
import client from 'prom-client';
import type { BgpPeerView, BgpRouteView } from '../metrics/state-view.js';
import type { BgpSpeaker } from './speaker.js';

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
  new client.Gauge({
    name: 'pharos_bgp_advertised_routes',
    help: 'Prefixes currently advertised to each neighbor',
    labelNames: ['peer'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const p of peers()) this.set({ peer: p.id }, p.prefixesSent);
    },
  });
  new client.Gauge({
    name: 'pharos_bgp_received_routes',
    help: 'Prefixes each neighbor currently announces to us (validated, counted, not installed)',
    labelNames: ['peer'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const p of peers()) this.set({ peer: p.id }, p.prefixesReceived);
    },
  });
  new client.Counter({
    name: 'pharos_bgp_updates_total',
    help: 'BGP UPDATE messages, by neighbor and direction',
    labelNames: ['peer', 'direction'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const p of peers()) {
        this.inc({ peer: p.id, direction: 'sent' }, p.counters.updatesSent);
        this.inc({ peer: p.id, direction: 'received' }, p.counters.updatesReceived);
      }
    },
  });
  new client.Counter({
    name: 'pharos_bgp_notifications_total',
    help: 'BGP NOTIFICATION messages, by neighbor and direction',
    labelNames: ['peer', 'direction'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const p of peers()) {
        this.inc({ peer: p.id, direction: 'sent' }, p.counters.notificationsSent);
        this.inc({ peer: p.id, direction: 'received' }, p.counters.notificationsReceived);
      }
    },
  });
  new client.Counter({
    name: 'pharos_bgp_session_flaps_total',
    help: 'Times a BGP session left Established',
    labelNames: ['peer'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const p of peers()) this.inc({ peer: p.id }, p.counters.flaps);
    },
  });
  new client.Counter({
    name: 'pharos_bgp_max_prefix_exceeded_total',
    help: 'Times a neighbor announced more prefixes than its maxPrefixes limit (restart: session reset with Cease/Maximum Number of Prefixes Reached; drop: routes past it ignored)',
    labelNames: ['peer'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const p of peers()) this.inc({ peer: p.id }, p.counters.maxPrefixExceeded);
    },
  });
  new client.Counter({
    name: 'pharos_bgp_received_prefixes_dropped_total',
    help: 'Prefixes a neighbor announced past its maxPrefixes limit and that were ignored (maxPrefixAction drop)',
    labelNames: ['peer'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const p of peers()) this.inc({ peer: p.id }, p.counters.prefixesDropped);
    },
  });
}
