/**
 * `npm run bench:charts`: draws bench/results/<bench>.svg from every
 * committed bench/results/<bench>.json (each bench also does it for its own
 * results when it ends), so charts follow results without re-running benches.
 */
import { BENCH_CHARTS, writeBenchChart } from './lib/bench-charts.js';

let failed = 0;
for (const name of Object.keys(BENCH_CHARTS)) {
  const svg = writeBenchChart(name);
  if (svg) console.log(`wrote ${svg}`);
  else { console.log(`${name}: no results or no chart`); failed++; }
}
process.exitCode = failed ? 1 : 0;
