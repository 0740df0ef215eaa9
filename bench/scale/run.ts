/**
 * One scale run at N services: the phases of `npm run bench:scale`, in order,
 * each bounded in time, each miss recorded as null plus a line in
 * `timeouts` (never a hang, never a made-up figure).
 *
 *  1. start     agent spawn → every service (and the probe) in the data path (kernel maps);
 *               ARP window (a): first answer for the probe VIP → programmed;
 *               then the agent settles (under 20% of a core and its event loop
 *               idle 90% of the time, for 2 s: the work it still does after
 *               the maps are full, e.g. announcing)
 *  2. steady    10 s of VmRSS samples
 *  3. edits     50 one-endpoint edits, each timed from the file's rename to
 *               the change of its frontend's value in ph_frontends (1 ms polls),
 *               ~200 ms apart; settle
 *  4. steady    10 s of VmRSS samples again
 *  5. scrapes   GET /metrics and GET /v1/state, timed (a few each)
 *  6. burst     300 new services written at once → all of them programmed;
 *               ARP window (b); settle
 *  7. restart   SIGTERM → a new agent on the same pins and state → ready,
 *               everything programmed before is programmed, and the agent
 *               has settled; ARP window (c)
 *
 * Settling between phases makes each phase start from a steady agent, so an
 * edit measures an edit and not the tail of the start. ARP losses while
 * settling are reported too (`arp_lost_elsewhere`).
 *
 * /metrics is scraped at each phase's boundaries for the event-loop delay
 * (bench/scale/prometheus.ts); a phase's delay covers it up to the settled
 * agent. A scrape that does not answer in time is a miss; after a miss the
 * next /metrics scrape waits until /healthz answers (within the HTTP bound)
 * or is skipped: on today's agent an unanswered scrape keeps computing, and
 * stacking more of them would only slow every later phase.
 */
import { loadavg } from 'node:os';
import { sleep } from '../../src/lab/wait.js';
import { decodeFrontendValue } from '../../src/datapath/abi.js';
import type { ArpProbe, ArpWindow } from './arp.js';
import { expectedOf, ScaleLab, type HttpTiming, type ProgrammedWait } from './lab.js';
import { baseManifests, MAX_ENDPOINTS, MIN_ENDPOINTS, PROBE_SERVICE, ScaleCluster, scaleServices, serviceFiles, SERVICES_PER_FILE, type EndpointSource, type ScaleService } from './manifests.js';
import type { ProgrammedCount } from './datapath-watch.js';
import { phaseDelay, PROCESS_START, type PhaseDelay } from './prometheus.js';
import { mainThreadIdle } from './proc.js';
import { median, MIB, percentile, round } from './stats.js';

export interface ScaleTimeouts {
  programmedMs: number;
  burstMs: number;
  restartMs: number;
  /** Each wait for the agent to settle after a phase. */
  settleMs: number;
  editMs: number;
  editsPhaseMs: number;
  httpMs: number;
  stopGraceMs: number;
}

/** Defaults sized so today's agent (~2 min at 1,000, 30+ min at 10,000) finishes; `scale` multiplies all. */
export function defaultTimeouts(services: number, scale = 1): ScaleTimeouts {
  const s = (ms: number): number => Math.round(ms * scale);
  return {
    programmedMs: s(Math.max(300_000, services * 240)),
    burstMs: s(120_000 + services * 60),
    restartMs: s(Math.max(300_000, services * 240)),
    settleMs: s(Math.max(240_000, services * 200)),
    editMs: s(30_000),
    editsPhaseMs: s(15 * 60_000),
    httpMs: s(30_000),
    stopGraceMs: s(30_000),
  };
}

export interface ScaleRunOptions {
  services: number;
  burst: number;
  edits: number;
  editSpacingMs: number;
  seed: number;
  /** Distinct endpoints per service (default) or a shared pool of addresses. */
  endpoints?: EndpointSource;
  steadyMs: number;
  scrapes: number;
  timeouts: ScaleTimeouts;
  prefix?: string;
  agentArgs?: string[];
  /** Flags for the agent's node (profiling). */
  nodeArgs?: string[];
  keepWork?: boolean;
  log?: (msg: string) => void;
  /** Called once at the start with a function that returns what the run measured so far (for an interrupted run). */
  onRun?: (snapshot: () => ScaleRun) => void;
}

type Phase = 'start' | 'edits' | 'scrapes' | 'burst' | 'restart';
/** The phases whose event-loop delay and ARP losses the issue's targets name. */
export const TARGET_PHASES: readonly Phase[] = ['start', 'scrapes', 'burst', 'restart'];

export interface ScaleRun {
  services: number;
  backends_per_service: [number, number];
  /** Extra: 0 = distinct endpoints per service, else the size of the shared address pool. */
  shared_endpoint_pool: number;
  start_to_programmed_s: number | null;
  edit_ms_median: number | null;
  edit_ms_p99: number | null;
  rss_steady_mb: number | null;
  rss_peak_mb: number | null;
  cpu_s: number | null;
  event_loop_delay_p99_ms: number | null;
  metrics_scrape_s: number | null;
  metrics_bytes: number | null;
  state_s: number | null;
  arp_lost: number | null;
  // Extras.
  event_loop_delay_source: string | null;
  event_loop_delay_p99_ms_by_phase: Partial<Record<Phase, number | null>>;
  /** Largest single delay per phase (histogram: upper edge of the highest bucket that gained; fallback: prom-client's lag max). */
  event_loop_delay_max_ms_by_phase?: Partial<Record<Phase, number>>;
  arp_lost_by_window: { start: number | null; burst: number | null; restart: number | null };
  arp_probes_by_window: { start: number | null; burst: number | null; restart: number | null };
  arp_longest_outage_ms_by_window: { start: number | null; burst: number | null; restart: number | null };
  /** Losses outside the three target windows, for the record (settle = after a phase's target was met, until the agent settled). */
  arp_lost_elsewhere: { settle_after_start: number; steady: number; edits: number; scrapes: number; settle_after_burst: number };
  /** Spawn → the agent settled after the start; burst write → settled after the burst (null: not within settleMs). */
  settled_after_start_s: number | null;
  settled_after_burst_s: number | null;
  arp_first_answer_s: number | null;
  programmed: Partial<Record<'start' | 'burst' | 'restart', Omit<ProgrammedCount, 'vipByPort' | 'programmedPorts'> | null>>;
  burst_services: number;
  burst_to_programmed_s: number | null;
  restart: { stop_s: number; killed: boolean; ready_s: number | null; programmed_s: number | null; settled_s: number | null; target_services: number };
  rss_steady_after_start_mb: number | null;
  rss_steady_after_edits_mb: number | null;
  cpu_s_by_phase: Partial<Record<Phase, number>>;
  edits_done: number;
  /** Every edit's time in order (ms; null: unchanged within its bound), to see whether a p99 is one outlier or a tail. */
  edit_ms_each: (number | null)[];
  edit_timeouts: number;
  edit_frontend_missing: number;
  edit_wrong_backend_count: number;
  /** Responder liveness stamp (ph_liveness, sampled every 100 ms) over start, burst and restart, each up to the settled agent: largest age, and time past --responder-max-age (3 s: the responder answers nothing then). */
  liveness_max_age_ms_by_phase: Partial<Record<'start' | 'burst' | 'restart', number | null>>;
  responder_stale_s_by_phase: Partial<Record<'start' | 'burst' | 'restart', number>>;
  metrics_scrape_misses: number;
  metrics_scrapes_skipped: number;
  /** /metrics bytes on the wire, asked for with Accept-Encoding: gzip as Prometheus does (metrics_bytes is the document). */
  metrics_wire_bytes: number | null;
  state_bytes: number | null;
  state_misses: number;
  timeouts: string[];
  /** 1-minute load average when the run started and when it ended (the machine is shared). */
  load_average_1m: [number, number];
  total_s: number;
  error?: string;
}

/** /metrics, never stacking a scrape on an unanswered one (see the top of this file). */
class MetricsScraper {
  misses = 0;
  skipped = 0;
  private missed = false;

  constructor(private readonly lab: ScaleLab, private readonly timeoutMs: number, private readonly notes: string[]) {}

  async scrape(label: string): Promise<HttpTiming | undefined> {
    if (!this.lab.agentAlive() || (this.missed && !(await this.responsive()))) {
      this.skipped++;
      this.notes.push(`/metrics at ${label}: skipped (the agent did not answer /healthz within ${this.timeoutMs / 1000} s after an unanswered scrape)`);
      return undefined;
    }
    const r = await this.lab.http('/metrics', this.timeoutMs, { body: true, gzip: true });
    if (r.status === 200 && r.body !== undefined) {
      this.missed = false;
      return r;
    }
    this.misses++;
    this.missed = true;
    this.notes.push(`/metrics at ${label}: ${r.timedOut ? `no answer in ${this.timeoutMs / 1000} s` : `status ${r.status}${r.error ? ` (${r.error})` : ''}`}`);
    return undefined;
  }

  /** /healthz answers within 2 s, tried until the HTTP bound. */
  private async responsive(): Promise<boolean> {
    const deadline = performance.now() + this.timeoutMs;
    for (let i = 0; i < 1000 && performance.now() < deadline && this.lab.agentAlive(); i++) {
      if ((await this.lab.http('/healthz', 2000)).status === 200) return true;
      await sleep(500);
    }
    return false;
  }

  /** A new agent process: nothing of the old one's is pending. */
  agentRestarted(): void {
    this.missed = false;
  }
}

function countSummary(c: ProgrammedCount | undefined): Omit<ProgrammedCount, 'vipByPort' | 'programmedPorts'> | null {
  if (!c) return null;
  return { expected: c.expected, frontends: c.frontends, complete: c.complete, responders: c.responders, programmed: c.programmed };
}

function describeMiss(what: string, w: ProgrammedWait, timeoutMs: number): string {
  const c = w.last;
  const state = c
    ? `${c.programmed} of ${c.expected} in the data path (${c.frontends} frontends, ${c.complete} with all backends, ${c.responders} responder entries)`
    : 'the pinned maps never appeared';
  return `${what}: not done in ${timeoutMs / 1000} s: ${state}`;
}

export async function runScale(o: ScaleRunOptions): Promise<ScaleRun> {
  const log = o.log ?? (() => undefined);
  const T = o.timeouts;
  const timeouts: string[] = [];
  const t0 = performance.now();
  const run: ScaleRun = {
    services: o.services, backends_per_service: [MIN_ENDPOINTS, MAX_ENDPOINTS], shared_endpoint_pool: o.endpoints?.kind === 'shared' ? o.endpoints.size : 0,
    start_to_programmed_s: null, edit_ms_median: null, edit_ms_p99: null, rss_steady_mb: null, rss_peak_mb: null, cpu_s: null,
    event_loop_delay_p99_ms: null, metrics_scrape_s: null, metrics_bytes: null, state_s: null, arp_lost: null,
    event_loop_delay_source: null, event_loop_delay_p99_ms_by_phase: {},
    arp_lost_by_window: { start: null, burst: null, restart: null },
    arp_probes_by_window: { start: null, burst: null, restart: null },
    arp_longest_outage_ms_by_window: { start: null, burst: null, restart: null },
    arp_lost_elsewhere: { settle_after_start: 0, steady: 0, edits: 0, scrapes: 0, settle_after_burst: 0 },
    settled_after_start_s: null, settled_after_burst_s: null,
    arp_first_answer_s: null, programmed: {}, burst_services: o.burst, burst_to_programmed_s: null,
    restart: { stop_s: 0, killed: false, ready_s: null, programmed_s: null, settled_s: null, target_services: 0 },
    rss_steady_after_start_mb: null, rss_steady_after_edits_mb: null, cpu_s_by_phase: {},
    edits_done: 0, edit_ms_each: [], edit_timeouts: 0, edit_frontend_missing: 0, edit_wrong_backend_count: 0,
    liveness_max_age_ms_by_phase: {}, responder_stale_s_by_phase: {}, metrics_scrape_misses: 0, metrics_scrapes_skipped: 0, metrics_wire_bytes: null, state_bytes: null, state_misses: 0,
    timeouts, load_average_1m: [round(loadavg()[0], 2)!, 0], total_s: 0,
  };
  const delays: Partial<Record<Phase, PhaseDelay>> = {};
  const finish = (r: ScaleRun): ScaleRun => {
    summarizeDelays(r, delays);
    const windows = [r.arp_lost_by_window.start, r.arp_lost_by_window.burst, r.arp_lost_by_window.restart];
    r.arp_lost = windows.every((x) => x !== null) ? windows.reduce((a, b) => a! + b!, 0) : null;
    r.total_s = round((performance.now() - t0) / 1000, 0)!;
    r.load_average_1m[1] = round(loadavg()[0], 2)!;
    return r;
  };
  const lab = await ScaleLab.create({ prefix: o.prefix ?? 'phsb', agentArgs: o.agentArgs ?? [], nodeArgs: o.nodeArgs ?? [], keepWork: o.keepWork ?? false });
  const scraper = new MetricsScraper(lab, T.httpMs, timeouts);
  o.onRun?.(() => {
    const partial = finish(structuredClone(run));
    partial.metrics_scrape_misses = scraper.misses;
    partial.metrics_scrapes_skipped = scraper.skipped;
    lab.sampler.sampleNow();
    partial.cpu_s = round(lab.sampler.cpuTotal(), 1);
    partial.rss_peak_mb = round(lab.sampler.peakKb() * 1024 / MIB, 1);
    return partial;
  });

  let probe: ArpProbe | undefined;
  try {
    const cluster = new ScaleCluster(o.seed, o.endpoints);
    const initial = scaleServices(0, o.services, o.seed, o.endpoints);
    cluster.add(initial);
    lab.writeFiles([...baseManifests(), ...serviceFiles(initial)]);
    probe = lab.startArpProbe();
    await sleep(300);

    // 1. Start.
    log(`start: ${o.services} services (+ probe), timeout ${T.programmedMs / 1000} s`);
    const agent = await lab.startAgent();
    // The probe service counts too: its address is the one the client ARPs.
    const start = await lab.waitProgrammed(expectedOf([PROBE_SERVICE, ...initial]), T.programmedMs);
    const startEnd = start.doneAt ?? performance.now();
    run.programmed.start = countSummary(start.last);
    if (start.doneAt !== undefined) run.start_to_programmed_s = round((start.doneAt - agent.startedAt) / 1000, 2);
    else timeouts.push(describeMiss('start', start, T.programmedMs));
    const firstAnswer = probe.firstAnswerAfter(agent.startedAt);
    if (firstAnswer !== undefined) run.arp_first_answer_s = round((firstAnswer - agent.startedAt) / 1000, 2);
    if (firstAnswer !== undefined && firstAnswer <= startEnd) recordArp(run, 'start', probe.window(firstAnswer, startEnd));
    else timeouts.push('ARP window (a): the probe VIP was not answered before the start phase ended');
    run.cpu_s_by_phase.start = round(lab.sampler.cpuBetween(agent.startedAt, startEnd), 2) ?? undefined;
    log(`start: ${start.doneAt !== undefined ? `${run.start_to_programmed_s} s` : 'timed out'}; ${start.last?.programmed ?? 0}/${o.services + 1} programmed (with the probe)`);
    const startSettled = await settle(lab, T.settleMs, 'start', timeouts);
    if (startSettled !== undefined) run.settled_after_start_s = round((startSettled - agent.startedAt) / 1000, 2);
    run.arp_lost_elsewhere.settle_after_start = probe.window(startEnd, performance.now()).lost;
    log(`start: settled ${run.settled_after_start_s ?? 'miss'} s after the spawn`);
    recordLiveness(run, lab, 'start', agent.startedAt, performance.now());
    const startScrape = await scraper.scrape('the end of start');
    delays.start = phaseDelay(PROCESS_START, startScrape?.body !== undefined ? [startScrape.body] : []);

    // 2. Steady memory.
    const steady1 = await steadyRss(lab, o.steadyMs, probe, run);
    run.rss_steady_after_start_mb = steady1;

    // 3. Edits.
    const programmed = start.last?.programmedPorts ?? new Set<number>();
    const candidates = initial.filter((s) => programmed.has(s.port)).map((s) => s.index);
    const editsBase = await scraper.scrape('the start of edits');
    const editsStart = performance.now();
    const editTimes = await runEdits(lab, cluster, candidates, start.last?.vipByPort ?? new Map(), o, run, log);
    const editsEnd = performance.now();
    run.arp_lost_elsewhere.edits = probe.window(editsStart, editsEnd).lost;
    if (editTimes.length > 0) {
      run.edit_ms_median = round(median(editTimes), 1);
      run.edit_ms_p99 = round(percentile(editTimes, 0.99), 1);
      run.cpu_s_by_phase.edits = round(lab.sampler.cpuBetween(editsStart, editsEnd), 2) ?? undefined;
    }
    await settle(lab, T.settleMs, 'edits', timeouts);
    const editsEndScrape = await scraper.scrape('the end of edits');
    delays.edits = phaseDelay(editsBase?.body, editsEndScrape?.body !== undefined ? [editsEndScrape.body] : []);

    // 4. Steady memory after edits.
    run.rss_steady_after_edits_mb = await steadyRss(lab, o.steadyMs, probe, run);
    const steadies = [run.rss_steady_after_start_mb, run.rss_steady_after_edits_mb].filter((x): x is number => x !== null);
    run.rss_steady_mb = steadies.length ? Math.max(...steadies) : null;

    // 5. Scrapes.
    const scrapesStart = performance.now();
    const metricsTimes: (number | null)[] = [];
    const metricsBytes: number[] = [];
    const metricsWireBytes: number[] = [];
    const inPhase: string[] = [];
    let scrapesBase: string | undefined;
    for (let i = 0; i < o.scrapes; i++) {
      const r = await scraper.scrape(`timed scrape ${i + 1}`);
      metricsTimes.push(r ? r.seconds : null);
      if (r?.body !== undefined) {
        metricsBytes.push(r.documentBytes ?? r.bytes);
        metricsWireBytes.push(r.bytes);
        if (scrapesBase === undefined) scrapesBase = r.body;
        else inPhase.push(r.body);
      }
      // Past the agent's reuse window (1 s, or as long as the document took): each scrape is computed, not a cached copy.
      await sleep(Math.max(2000, 2000 * (r?.seconds ?? 0) + 500));
    }
    const stateTimes: (number | null)[] = [];
    const stateBytes: number[] = [];
    for (let i = 0; i < o.scrapes; i++) {
      const r = await lab.http('/v1/state', T.httpMs);
      if (r.status === 200) {
        stateTimes.push(r.seconds);
        stateBytes.push(r.bytes);
      } else {
        stateTimes.push(null);
        run.state_misses++;
        timeouts.push(`/v1/state ${i + 1}: ${r.timedOut ? `no answer in ${T.httpMs / 1000} s` : `status ${r.status}${r.error ? ` (${r.error})` : ''}`}`);
      }
      await sleep(1000);
    }
    const scrapesClose = await scraper.scrape('the end of scrapes');
    if (scrapesClose?.body !== undefined) inPhase.push(scrapesClose.body);
    run.arp_lost_elsewhere.scrapes = probe.window(scrapesStart, performance.now()).lost;
    run.metrics_scrape_s = round(median(metricsTimes), 3);
    run.metrics_bytes = metricsBytes.length ? median(metricsBytes) : null;
    run.metrics_wire_bytes = metricsWireBytes.length ? median(metricsWireBytes) : null;
    run.state_s = round(median(stateTimes), 3);
    run.state_bytes = stateBytes.length ? median(stateBytes) : null;
    delays.scrapes = phaseDelay(scrapesBase, inPhase);

    // 6. Burst.
    const burstFirst = Math.ceil(o.services / SERVICES_PER_FILE) * SERVICES_PER_FILE;
    const burst = scaleServices(burstFirst, o.burst, o.seed, o.endpoints);
    cluster.add(burst);
    // The scrape that closed the scrapes phase opens the burst (another one now could be the agent's cached copy).
    const burstBase = scrapesClose;
    log(`burst: ${o.burst} services, timeout ${T.burstMs / 1000} s`);
    const burstAt = performance.now();
    lab.writeFiles(serviceFiles(burst));
    const b = await lab.waitProgrammed(expectedOf(burst), T.burstMs);
    const burstEnd = b.doneAt ?? performance.now();
    run.programmed.burst = countSummary(b.last);
    if (b.doneAt !== undefined) run.burst_to_programmed_s = round((b.doneAt - burstAt) / 1000, 2);
    else timeouts.push(describeMiss('burst', b, T.burstMs));
    recordArp(run, 'burst', probe.window(burstAt, burstEnd));
    run.cpu_s_by_phase.burst = round(lab.sampler.cpuBetween(burstAt, burstEnd), 2) ?? undefined;
    log(`burst: ${b.doneAt !== undefined ? `${run.burst_to_programmed_s} s` : 'timed out'}`);
    const burstSettled = await settle(lab, T.settleMs, 'burst', timeouts);
    if (burstSettled !== undefined) run.settled_after_burst_s = round((burstSettled - burstAt) / 1000, 2);
    run.arp_lost_elsewhere.settle_after_burst = probe.window(burstEnd, performance.now()).lost;
    recordLiveness(run, lab, 'burst', burstAt, performance.now());
    const burstEndScrape = await scraper.scrape('the end of the burst');
    delays.burst = phaseDelay(burstBase?.body, burstEndScrape?.body !== undefined ? [burstEndScrape.body] : []);

    // 7. Restart: the target is what was in the data path just before (all of it, unless something never fit).
    const all = [PROBE_SERVICE, ...cluster.services.values()];
    const before = lab.watch.count(expectedOf(all));
    const target = all.filter((s) => before?.programmedPorts.has(s.port));
    run.restart.target_services = target.length;
    if (target.length < all.length) timeouts.push(`restart: only the ${target.length} of ${all.length} services in the data path before the restart are waited for`);
    log(`restart: SIGTERM, then a new agent; waiting for ${target.length} services, timeout ${T.restartMs / 1000} s`);
    const restartAt = performance.now();
    const stop = await lab.stopAgent(T.stopGraceMs);
    run.restart.stop_s = round(stop.ms / 1000, 2)!;
    run.restart.killed = stop.killed;
    if (stop.killed) timeouts.push(`restart: the agent did not exit within ${T.stopGraceMs / 1000} s of SIGTERM and was killed`);
    await lab.startAgent();
    scraper.agentRestarted();
    const restartDeadline = restartAt + T.restartMs;
    const ready = await lab.waitReady(restartDeadline - performance.now());
    if (ready !== undefined) run.restart.ready_s = round((ready - restartAt) / 1000, 2);
    else timeouts.push(`restart: /readyz did not answer 200 within ${T.restartMs / 1000} s`);
    const r = await lab.waitProgrammed(expectedOf(target), Math.max(0, restartDeadline - performance.now()));
    run.programmed.restart = countSummary(r.last);
    if (r.doneAt !== undefined) run.restart.programmed_s = round((r.doneAt - restartAt) / 1000, 2);
    else timeouts.push(describeMiss('restart', r, T.restartMs));
    const settled = await settle(lab, Math.max(0, restartDeadline - performance.now()), 'restart', timeouts);
    if (settled !== undefined) run.restart.settled_s = round((settled - restartAt) / 1000, 2);
    const restartEnd = performance.now();
    recordLiveness(run, lab, 'restart', restartAt, restartEnd);
    recordArp(run, 'restart', probe.window(restartAt, restartEnd));
    run.cpu_s_by_phase.restart = round(lab.sampler.cpuBetween(restartAt, restartEnd), 2) ?? undefined;
    const restartScrape = await scraper.scrape('the end of the restart');
    delays.restart = phaseDelay(PROCESS_START, restartScrape?.body !== undefined ? [restartScrape.body] : []);

    lab.sampler.sampleNow();
    run.cpu_s = round(lab.sampler.cpuTotal(), 1);
    run.rss_peak_mb = round(lab.sampler.peakKb() * 1024 / MIB, 1);
  } catch (err) {
    run.error = (err as Error).message;
    log(`run failed: ${run.error}`);
    lab.sampler.sampleNow();
    if (lab.sampler.samples.length) {
      run.cpu_s = round(lab.sampler.cpuTotal(), 1);
      run.rss_peak_mb = round(lab.sampler.peakKb() * 1024 / MIB, 1);
    }
  } finally {
    run.metrics_scrape_misses = scraper.misses;
    run.metrics_scrapes_skipped = scraper.skipped;
    if (o.keepWork) log(`work directory kept: ${lab.work}`);
    finish(run);
    await lab.teardown();
  }
  return run;
}

function recordLiveness(run: ScaleRun, lab: ScaleLab, phase: 'start' | 'burst' | 'restart', from: number, to: number): void {
  const l = lab.livenessBetween(from, to);
  run.liveness_max_age_ms_by_phase[phase] = round(l.maxAgeMs, 0);
  run.responder_stale_s_by_phase[phase] = round(l.staleMs / 1000, 1)!;
}

function recordArp(run: ScaleRun, w: 'start' | 'burst' | 'restart', a: ArpWindow): void {
  run.arp_lost_by_window[w] = a.lost;
  run.arp_probes_by_window[w] = a.probes;
  run.arp_longest_outage_ms_by_window[w] = a.longestOutageMs;
}

/** Median VmRSS (MiB) of the agent over `ms` from now. */
async function steadyRss(lab: ScaleLab, ms: number, probe: ArpProbe, run: ScaleRun): Promise<number | null> {
  const from = performance.now();
  await sleep(ms);
  const to = performance.now();
  run.arp_lost_elsewhere.steady += probe.window(from, to).lost;
  const pid = lab.agent?.pid;
  const rss = lab.sampler.between(from, to).filter((s) => s.pid === pid).map((s) => s.rssKb);
  return rss.length ? round((median(rss)! * 1024) / MIB, 1) : null;
}

/**
 * Until the agent is quiet: over the last 2 s it used under 20% of one core
 * and its main thread was waiting in epoll in at least 90% of samples taken
 * every 50 ms (both from /proc). performance.now() then, or undefined
 * (noted) after `timeoutMs`.
 */
async function settle(lab: ScaleLab, timeoutMs: number, after: string, notes: string[]): Promise<number | undefined> {
  const windowMs = 2000;
  const since = performance.now();
  const deadline = since + timeoutMs;
  const idle: { at: number; idle: boolean }[] = [];
  for (let i = 0; i < 1_000_000 && performance.now() < deadline; i++) {
    const pid = lab.agent?.pid;
    if (!lab.agentAlive() || pid === undefined) break;
    const now = performance.now();
    const sample = mainThreadIdle(pid);
    if (sample !== undefined) idle.push({ at: now, idle: sample });
    while (idle.length && idle[0]!.at < now - windowMs) idle.shift();
    const quietLoop = idle.length >= (windowMs / 50) * 0.8 && idle.filter((x) => x.idle).length >= 0.9 * idle.length;
    if (now - since >= windowMs && quietLoop && lab.sampler.cpuBetween(now - windowMs, now) < 0.2 * (windowMs / 1000)) return now;
    await sleep(50);
  }
  notes.push(`${after}: the agent did not settle (under 20% of a core and its event loop idle 90% of the time, for 2 s) within ${Math.round(timeoutMs / 1000)} s`);
  return undefined;
}

async function runEdits(lab: ScaleLab, cluster: ScaleCluster, candidates: number[], vipByPort: Map<number, string>, o: ScaleRunOptions,
  run: ScaleRun, log: (m: string) => void): Promise<(number | null)[]> {
  const T = o.timeouts;
  const times: (number | null)[] = [];
  if (candidates.length === 0) {
    run.timeouts.push('edits: no service was in the data path to edit');
    return times;
  }
  const phaseDeadline = performance.now() + T.editsPhaseMs;
  for (let k = 0; k < o.edits; k++) {
    if (performance.now() > phaseDeadline) {
      run.timeouts.push(`edits: phase budget ${T.editsPhaseMs / 1000} s used up after ${k} of ${o.edits} edits`);
      break;
    }
    const edit = cluster.nextEdit(candidates);
    const vip = vipByPort.get(edit.service.port)!;
    const before = lab.watch.frontendValue(vip, edit.service.port);
    const ms = await timeEdit(lab, edit.file, vip, edit.service, before, T.editMs, run);
    times.push(ms);
    run.edit_ms_each.push(ms === null ? null : round(ms, 1));
    run.edits_done++;
    if (ms === null) {
      run.edit_timeouts++;
      run.timeouts.push(`edit ${k + 1} (${edit.service.name}, ${edit.delta > 0 ? '+1' : '-1'} endpoint): frontend unchanged after ${T.editMs / 1000} s`);
    }
    if ((k + 1) % 10 === 0) log(`edits: ${k + 1}/${o.edits}, last ${ms === null ? 'timed out' : `${ms.toFixed(1)} ms`}`);
    await sleep(o.editSpacingMs);
  }
  return times;
}

/** Writes the edited file and polls the frontend's value every ~1 ms until its bytes change; ms, or null on timeout. */
async function timeEdit(lab: ScaleLab, file: { name: string; text: string }, vip: string, service: ScaleService, before: Buffer | null,
  timeoutMs: number, run: ScaleRun): Promise<number | null> {
  let sawMissing = false;
  const t0 = performance.now();
  lab.writeFiles([file]);
  const deadline = t0 + timeoutMs;
  for (let i = 0; i < 10_000_000 && performance.now() < deadline; i++) {
    const v = lab.watch.frontendValue(vip, service.port);
    const now = performance.now();
    if (v === null) sawMissing = true;
    else if (!before || !v.equals(before)) {
      if (sawMissing) run.edit_frontend_missing++;
      if (decodeFrontendValue(v).backends !== service.endpoints.length) run.edit_wrong_backend_count++;
      return now - t0;
    }
    if (!lab.agentAlive()) break;
    await sleep(1);
  }
  if (sawMissing) run.edit_frontend_missing++;
  return null;
}

function summarizeDelays(run: ScaleRun, delays: Partial<Record<Phase, PhaseDelay>>): void {
  const sources = new Set<string>();
  const lagMax: Partial<Record<Phase, number>> = {};
  for (const [phase, d] of Object.entries(delays) as [Phase, PhaseDelay][]) {
    run.event_loop_delay_p99_ms_by_phase[phase] = round(d.p99Ms, 1);
    if (d.source) sources.add(d.source);
    if (d.maxMs !== undefined) lagMax[phase] = round(d.maxMs, 1)!;
    if (d.note && TARGET_PHASES.includes(phase)) run.timeouts.push(`event-loop delay, ${phase}: ${d.note}`);
  }
  if (Object.keys(lagMax).length) run.event_loop_delay_max_ms_by_phase = lagMax;
  const target = TARGET_PHASES.map((p) => delays[p]?.p99Ms).filter((x): x is number => typeof x === 'number');
  run.event_loop_delay_p99_ms = target.length ? round(Math.max(...target), 1) : null;
  run.event_loop_delay_source = sources.size ? [...sources].join(', ') : null;
}
