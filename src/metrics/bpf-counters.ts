/**
 * A Prometheus counter family read from a BPF program's per-CPU counters
 * when scraped: one series per reason, nothing while the program is not
 * loaded (`counters` returns undefined).
 */
import client from 'prom-client';
import { registry } from './registry.js';

export function registerBpfReasonCounter<R extends string>(name: string, help: string, label: string, counters: () => Record<R, bigint> | undefined): void {
  new client.Counter({
    name,
    help,
    labelNames: [label],
    registers: [registry],
    collect() {
      this.reset();
      const c = counters();
      if (!c) return;
      for (const [reason, n] of Object.entries<bigint>(c)) this.inc({ [label]: reason }, Number(n));
    },
  });
}
