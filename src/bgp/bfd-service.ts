/**
 * BFD for the speaker, run in a worker thread (bfd-worker.ts) so that a
 * stall of the agent's main thread — 0.5-1 s at 10,000 services during a
 * start (bench/scale) — cannot delay our packets past the peer's detection
 * time, nor our own detection. The XDP responder's liveness stamp is kept
 * off the main thread for the same reason (native/src/liveness.cc).
 *
 * The main thread keeps what it asked for (configs) and the last status the
 * worker reported for each peer; `status()` answers from that, so /v1/state
 * and the metrics read no further than a message away. Transitions arrive
 * as messages and are emitted as before, to drive the BGP teardown.
 *
 * A main thread that stops running altogether (wedged, not busy) must not
 * keep BFD Up: it pets the worker every 250 ms, and a worker not petted for
 * 10 s stops sending (bfd-worker.ts), as the XDP responder's liveness
 * watchdog does.
 *
 * A worker that dies without being asked is logged as an error, its
 * sessions show the error (Down) in /v1/state and `pharos bgp peers`, and
 * it is started again with the same sessions, after a back-off that grows
 * while it keeps dying.
 */
import { EventEmitter } from 'node:events';
import { extname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { BfdTransition } from './bfd.js';
import type { BfdLog, BfdPeerConfig, BfdPeerStatus, BfdServiceOptions } from './bfd-socket.js';
import type { BfdCommand, BfdReport, BfdWorkerData } from './bfd-worker.js';

/**
 * The worker next to this module: bfd-worker.js once built. Run from the
 * TypeScript sources (tests under tsx or tap), a Node 20 worker does not get
 * the parent's loader hooks (its --import tsx has no effect there), so a
 * small ESM bootstrap registers tsx in the worker before loading the entry.
 */
function workerEntry(): { url: URL; execArgv?: string[] } {
  const ext = extname(fileURLToPath(import.meta.url));
  const entry = new URL(`./bfd-worker${ext}`, import.meta.url);
  if (ext !== '.ts') return { url: entry };
  const tsx = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import { register } from ${JSON.stringify(tsx)}; register(); await import(${JSON.stringify(entry.href)});`;
  // The parent's --import flags (tap's TypeScript loader) would only slow the worker's start, by seconds.
  return { url: new URL(`data:text/javascript,${encodeURIComponent(bootstrap)}`), execArgv: [] };
}

const RESTART_MIN_MS = 100;
const RESTART_MAX_MS = 30_000;
/** A worker that lived this long was healthy: the next restart starts from the shortest back-off. */
const HEALTHY_AFTER_MS = 60_000;
/** How often this thread pets the worker's watchdog (bfd-worker.ts: silent 10 s, BFD stops sending). */
const PET_MS = 250;
/** How long stop() waits for the AdminDown packets before terminating the worker anyway. */
const STOP_TIMEOUT_MS = 2_000;

export class BfdService extends EventEmitter<{ transition: [peerAddress: string, transition: BfdTransition] }> {
  private readonly configs = new Map<string, BfdPeerConfig>();
  private readonly statuses = new Map<string, BfdPeerStatus>();
  private readonly log: BfdLog;
  private worker?: Worker;
  private startedAt = 0;
  private restartDelayMs = RESTART_MIN_MS;
  private restartTimer?: NodeJS.Timeout;
  private stopping?: Promise<void>;
  /** Tells the worker's watchdog this thread still runs (a wedged one must not keep BFD Up). */
  private readonly pet: NodeJS.Timeout;
  /** Times the worker died and was started again. */
  restarts = 0;

  constructor(private readonly options: BfdServiceOptions = {}) {
    super();
    this.log = options.log ?? (() => {});
    this.startWorker();
    this.pet = setInterval(() => this.send({ type: 'pet' }), PET_MS);
  }

  /** Creates the session for `peerAddress`, or updates its timers. */
  ensure(config: BfdPeerConfig): void {
    if (this.stopping) return;
    const known = this.configs.get(config.peerAddress);
    if (known && JSON.stringify(known) === JSON.stringify(config)) return;
    if (known && known.localAddress !== config.localAddress) this.statuses.delete(config.peerAddress);
    this.configs.set(config.peerAddress, config);
    this.send({ type: 'ensure', config });
  }

  /** Ends the session: the worker tells the peer AdminDown (so it does not take it as a failure). */
  remove(peerAddress: string): void {
    if (!this.configs.delete(peerAddress)) return;
    this.statuses.delete(peerAddress);
    this.send({ type: 'remove', peerAddress });
  }

  /** The last status the worker reported; undefined for a peer without a session or not reported yet. */
  status(peerAddress: string): BfdPeerStatus | undefined {
    return this.configs.has(peerAddress) ? this.statuses.get(peerAddress) : undefined;
  }

  peers(): string[] {
    return [...this.configs.keys()];
  }

  /** AdminDown to every peer (RFC 5882 §3.2: not a failure), then the worker ends. */
  stop(): Promise<void> {
    this.stopping ??= this.stopWorker();
    return this.stopping;
  }

  private async stopWorker(): Promise<void> {
    clearTimeout(this.restartTimer);
    clearInterval(this.pet);
    const worker = this.worker;
    if (!worker) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    const timer = setTimeout(() => {
      this.log('warn', `BFD worker did not stop in ${STOP_TIMEOUT_MS} ms; terminating it`);
      void worker.terminate();
    }, STOP_TIMEOUT_MS);
    this.send({ type: 'stop' });
    await exited;
    clearTimeout(timer);
  }

  private send(c: BfdCommand): void {
    // Without a worker (between a crash and its restart) the restart sends every config.
    this.worker?.postMessage(c);
  }

  private startWorker(): void {
    const data: BfdWorkerData = {
      ...(this.options.port !== undefined ? { port: this.options.port } : {}),
      ...(this.options.peerPort !== undefined ? { peerPort: this.options.peerPort } : {}),
      mainTimeOrigin: performance.timeOrigin,
    };
    const entry = workerEntry();
    const worker = new Worker(entry.url, { workerData: data, name: 'pharos-bfd', ...(entry.execArgv ? { execArgv: entry.execArgv } : {}) });
    this.worker = worker;
    this.startedAt = performance.now();
    let failure: string | undefined;
    worker.on('message', (r: BfdReport) => this.onReport(r));
    worker.on('error', (e) => { failure = e.stack ?? e.message; });
    worker.on('exit', (code) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      if (this.stopping) return;
      this.onCrash(failure ?? `exit code ${code}`);
    });
    for (const config of this.configs.values()) this.send({ type: 'ensure', config });
  }

  private onCrash(reason: string): void {
    if (performance.now() - this.startedAt > HEALTHY_AFTER_MS) this.restartDelayMs = RESTART_MIN_MS;
    const delay = this.restartDelayMs;
    this.restartDelayMs = Math.min(this.restartDelayMs * 2, RESTART_MAX_MS);
    this.restarts++;
    const error = `BFD worker died (${reason.split('\n')[0]}); restarting in ${delay} ms`;
    this.log('error', error, { sessions: this.configs.size, restarts: this.restarts, reason });
    // Nothing is sent or detected until the restart: say so instead of showing the last state.
    for (const [peer, s] of this.statuses) this.statuses.set(peer, { ...s, state: 'Down', error });
    this.restartTimer = setTimeout(() => {
      if (!this.stopping) this.startWorker();
    }, delay);
  }

  private onReport(r: BfdReport): void {
    switch (r.type) {
      case 'status':
        if (this.configs.has(r.peerAddress)) this.statuses.set(r.peerAddress, r.status);
        break;
      case 'transition':
        if (!this.configs.has(r.peerAddress)) break;
        this.statuses.set(r.peerAddress, r.status);
        this.emit('transition', r.peerAddress, r.transition);
        break;
      case 'log':
        this.log(r.level, r.msg, r.fields);
        break;
      case 'stopped':
        break;
    }
  }
}
