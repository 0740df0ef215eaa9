/**
 * The BFD worker thread: runs BfdSockets (bfd-socket.ts) — sessions,
 * timers, periodic transmission, receive and detection — away from the
 * agent's main thread, whose event loop stalls for 0.5-1 s when it starts
 * or restarts with 10,000 services (bench/scale). A stall there longer than
 * the detection time (300 ms x 3 by default) would make the router declare
 * us down and drop our routes for no fault. BfdService (bfd-service.ts)
 * owns the thread; the messages both ways are below.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import type { BfdTransition } from './bfd.js';
import { BfdSockets, type BfdPeerConfig, type BfdPeerStatus } from './bfd-socket.js';
import { addon } from '../native/libbpf.js';

/** Main thread → worker. */
export type BfdCommand =
  | { type: 'ensure'; config: BfdPeerConfig }
  | { type: 'remove'; peerAddress: string }
  /** AdminDown to every peer, sockets closed, then `stopped`. */
  | { type: 'stop' }
  /** The main thread's event loop runs (sent every 250 ms, bfd-service.ts). */
  | { type: 'pet' };

/** Worker → main thread. Times are on the main thread's performance.now() clock. */
export type BfdReport =
  | { type: 'status'; peerAddress: string; status: BfdPeerStatus }
  /** Sent with the status of that moment: the speaker reads the peer's state (AdminDown or not) from it. */
  | { type: 'transition'; peerAddress: string; transition: BfdTransition; status: BfdPeerStatus }
  | { type: 'log'; level: 'debug' | 'info' | 'warn' | 'error'; msg: string; fields?: Record<string, unknown> }
  | { type: 'stopped' };

export interface BfdWorkerData {
  port?: number;
  peerPort?: number;
  /** The main thread's performance.timeOrigin: each thread's performance.now() counts from its own start. */
  mainTimeOrigin: number;
}

/** Packet counters alone change with every packet: they are reported at most this often. */
const COUNTER_REPORT_MS = 1_000;
const WATCHDOG_CHECK_MS = 250;
/**
 * A main thread silent this long is wedged, not busy (start-up stalls are
 * 0.5-1 s): BFD goes silent so the routers drop us, as they would have
 * before BFD had its own thread. The same limit as the XDP responder's
 * liveness watchdog (src/agent/agent.ts).
 */
const MAIN_WATCHDOG_MS = 10_000;

function start(port: NonNullable<typeof parentPort>, data: BfdWorkerData): void {
  const post = (r: BfdReport): void => port.postMessage(r);
  const toMainClock = (t: number): number => t + performance.timeOrigin - data.mainTimeOrigin;
  const sockets = new BfdSockets({
    ...(data.port !== undefined ? { port: data.port } : {}),
    ...(data.peerPort !== undefined ? { peerPort: data.peerPort } : {}),
    log: (level, msg, fields) => post({ type: 'log', level, msg, ...(fields ? { fields } : {}) }),
    // Loaded on first use, in this thread: a missing addon leaves the TTL check off (and says so), not BFD.
    ttlFilter: (fd, ttl) => addon().attachTtlFilter(fd, ttl),
  });
  const statusOf = (peerAddress: string): BfdPeerStatus | undefined => {
    const s = sockets.status(peerAddress);
    if (s?.lastTransitionAt !== undefined) s.lastTransitionAt = toMainClock(s.lastTransitionAt);
    return s;
  };
  // What the main thread last saw, without the packet counters: a change there is reported at once.
  const reported = new Map<string, string>();
  const countersOwed = new Set<string>();
  const visible = (s: BfdPeerStatus): string => {
    const { packetsReceived: _r, packetsSent: _s, packetsDiscarded: _d, ...rest } = s;
    return JSON.stringify(rest);
  };
  sockets.on('change', (peerAddress) => {
    const status = statusOf(peerAddress);
    if (!status) return;
    const key = visible(status);
    if (reported.get(peerAddress) === key) {
      countersOwed.add(peerAddress);
      return;
    }
    reported.set(peerAddress, key);
    countersOwed.delete(peerAddress);
    post({ type: 'status', peerAddress, status });
  });
  sockets.on('transition', (peerAddress, t) => {
    const status = statusOf(peerAddress);
    if (!status) return;
    reported.set(peerAddress, visible(status));
    post({ type: 'transition', peerAddress, transition: { ...t, at: toMainClock(t.at) }, status });
  });
  let lastPet = performance.now();
  const watchdog = setInterval(() => {
    if (sockets.muted || performance.now() - lastPet < MAIN_WATCHDOG_MS) return;
    sockets.muted = true;
    post({ type: 'log', level: 'error', msg: `the agent's main thread has not run for ${MAIN_WATCHDOG_MS} ms: BFD stops sending, so the routers drop this node` });
  }, WATCHDOG_CHECK_MS);
  const counters = setInterval(() => {
    for (const peerAddress of countersOwed) {
      const status = statusOf(peerAddress);
      if (status) post({ type: 'status', peerAddress, status });
    }
    countersOwed.clear();
  }, COUNTER_REPORT_MS);
  port.on('message', (c: BfdCommand) => {
    switch (c.type) {
      case 'ensure':
        sockets.ensure(c.config);
        break;
      case 'remove':
        reported.delete(c.peerAddress);
        countersOwed.delete(c.peerAddress);
        void sockets.remove(c.peerAddress);
        break;
      case 'pet':
        lastPet = performance.now();
        if (sockets.muted) {
          sockets.muted = false;
          post({ type: 'log', level: 'warn', msg: 'the agent\'s main thread runs again: BFD sends again' });
        }
        break;
      case 'stop':
        clearInterval(counters);
        clearInterval(watchdog);
        void sockets.stop().then(() => {
          post({ type: 'stopped' });
          port.close();
        });
        break;
    }
  });
}

if (parentPort) start(parentPort, workerData as BfdWorkerData);
