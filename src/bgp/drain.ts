/**
 * BGP side of a node drain (issue 18 item 7; src/model/drain.ts says when a
 * node drains). Two phases, so routers move flows before routes vanish:
 *
 * 1. `shutdown`: every route is re-advertised with the GRACEFUL_SHUTDOWN
 *    community (RFC 8326, 65535:0), LOCAL_PREF 0 on internal sessions, and
 *    our AS prepended once more on external ones. A router that honours
 *    RFC 8326 (bird2/FRR with the usual `65535:0 → local-pref 0` policy)
 *    or simply compares AS-path lengths prefers the other LB nodes at once,
 *    and an ECMP group drops this node, while this node still forwards what
 *    reaches it (in-flight packets, routers that have not converged yet).
 * 2. `withdrawn`: after the drain's withdraw delay (--bgp-drain-withdraw-delay)
 *    the routes are withdrawn; the sessions stay up, so an undrained node
 *    advertises again at once.
 *
 * With no other path, the router keeps using the worse one until the
 * withdrawal: the service stays reachable through the shutdown phase.
 */
import type { PeerSpec, RouteSpec } from './speaker.js';

/** 65535:0, RFC 8326 §6 (well-known community GRACEFUL_SHUTDOWN). */
export const GRACEFUL_SHUTDOWN = 0xffff0000;

export type DrainPhase = 'none' | 'shutdown' | 'withdrawn';

/** The drain phase at `now` for a drain that started at `since` (undefined: not draining). */
export function drainPhase(since: number | undefined, now: number, withdrawDelayMs: number): DrainPhase {
  if (since === undefined) return 'none';
  return now - since >= withdrawDelayMs ? 'withdrawn' : 'shutdown';
}

/** What the speaker is given for each peer in a drain phase. */
export function drainedPeers(peers: readonly PeerSpec[], phase: DrainPhase): PeerSpec[] {
  if (phase === 'none') return [...peers];
  if (phase === 'withdrawn') return peers.map((p) => ({ ...p, routes: [] }));
  return peers.map((p) => ({ ...p, routes: p.routes.map(gracefulShutdownRoute) }));
}

function gracefulShutdownRoute(r: RouteSpec): RouteSpec {
  return { ...r, communities: [...r.communities, GRACEFUL_SHUTDOWN], localPreference: 0, asPathPrepend: 1 };
}
