/**
 * bench/cps.ts at its smallest (one 1 s round per mode), so the harness
 * behind the README's connections-per-second figure keeps working: real
 * TCP through each LB in its own lab, and the counters show each pharos
 * mode took its own path — DSR dispatches the client's packets only (no
 * conntrack, no reverse NAT), SNAT creates a flow entry per connection and
 * reverse-NATs the replies.
 */
import t from 'tap';
import { privilegedUnavailable } from '../support/privileged.js';
import { CPS_MODES, cpsMarkdown, runCps } from '../../bench/cps.js';

t.test('every mode carries connections, each pharos mode on its own path', { skip: privilegedUnavailable() }, async (t) => {
  const results = await runCps({ modes: CPS_MODES, runs: 1, seconds: 1 });
  t.same(results.map((r) => r.mode), [...CPS_MODES]);
  for (const r of results) {
    t.ok(r.cps[0]! > 100, `${r.mode}: ${Math.round(r.cps[0]!)} conn/s`);
    t.equal(r.failed, 0, `${r.mode}: no failed connect`);
  }
  const snat = results.find((r) => r.mode === 'pharos-snat')!.counters!;
  const dsr = results.find((r) => r.mode === 'pharos-dsr')!.counters!;
  t.ok((snat.ct_create ?? 0) > 0 && (snat.rev_nat ?? 0) > 0, `SNAT: flow entries and reverse NAT (${JSON.stringify(snat)})`);
  t.ok((dsr.dsr_l2 ?? 0) > 0, `DSR: L2 dispatches (${JSON.stringify(dsr)})`);
  t.equal(dsr.ct_create ?? 0, 0, 'DSR: no conntrack entry');
  t.equal(dsr.rev_nat ?? 0, 0, 'DSR: no reply crossed the LB');
  t.match(cpsMarkdown(results, { load: '0 / 0', runs: 1, seconds: 1 }), /\| pharos-dsr \| \d+ \| \d\.\d\dx \|/);
});
