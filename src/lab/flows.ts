/**
 * Long-lived TCP flows from a lab namespace (the program is long-flows.ts):
 * for "do established connections survive this fault?" tests.
 */
import { labProgram, type Lab } from './netns.js';

/** What long-flows.ts prints at its end. */
export interface LongFlowsReport {
  connections: number;
  /** Connections neither reset nor closed. */
  open: number;
  /** Open ones whose last request had waited more than 3 s at the end. */
  stalled: number;
  broken: { conn: number; at: number; error: string }[];
  requests: number;
  longestWaitMs: number;
  /** Client addresses the server reported seeing. */
  peers: string[];
}

export interface LongFlowsOptions {
  host: string;
  port: number;
  connections: number;
  intervalMs: number;
  durationMs: number;
}

/** Starts the flows in namespace `ns`; `report` resolves with what the program printed when it ends (at most 5 s after its duration). */
export function startLongFlows(lab: Lab, ns: string, o: LongFlowsOptions): { report: Promise<LongFlowsReport> } {
  const child = lab.spawn(ns, [process.execPath, labProgram('long-flows'), o.host, String(o.port), String(o.connections), String(o.intervalMs), String(o.durationMs)]);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  const report = new Promise<LongFlowsReport>((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGTERM'); }, o.durationMs + 5_000);
    child.once('exit', () => {
      clearTimeout(timer);
      const line = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(line) as LongFlowsReport);
      } catch {
        reject(new Error(`long-flows in ${ns} printed no report: ${out.slice(-300)}`));
      }
    });
  });
  return { report };
}
