/**
 * The soak's pure parts: window statistics (attribution, failures, resets,
 * per-worker gaps), the schedule, the report format of issue #10 and the
 * target checks.
 */
import t from 'tap';
import { FAULTS, RSS_EDGE, WindowTracker, checkTargets, markdownTable, rssEnds, schedule, soakReport, type SoakReport } from '../../bench/soak/core.js';

t.test('a request counts in the window it started in; failures and resets counted', async (t) => {
  const w = new WindowTracker(['a', 'b']);
  w.record('a', 0, 5, 'ok'); // before any window: ignored
  w.open('agent-sigkill', 100);
  w.record('a', 90, 110, 'ok', '', 'be1 x'); // started before the window: not counted, but ends a's stall
  w.record('a', 110, 120, 'ok', '', 'be1 x');
  w.record('b', 105, 130, 'reset', 'ECONNRESET');
  w.record('b', 131, 140, 'fail', 'timeout');
  w.record('b', 141, 150, 'ok', '', 'be2 y');
  const s = w.close(200)!;
  t.equal(s.requests, 4);
  t.equal(s.failed, 2);
  t.equal(s.resets, 1);
  t.same(s.served, { 'be1 x': 1, 'be2 y': 1 });
  t.equal(s.samples.length, 2);
  t.match(s.samples[0], /^b \+5ms reset ECONNRESET$/);
});

t.test('max gap: the longest time one worker went unanswered inside the window, edges included', async (t) => {
  const w = new WindowTracker(['a', 'b']);
  w.open('x', 1000);
  for (let at = 1000; at <= 2000; at += 50) w.record('a', at, at + 10, 'ok');
  w.record('b', 1000, 1020, 'ok');
  w.record('b', 1020, 1800, 'ok'); // one slow answer: 780 ms
  w.record('b', 1800, 1850, 'ok');
  const s = w.close(2100)!;
  t.equal(s.max_gap_ms, 780, "b's slow answer is the longest stall");

  const edge = new WindowTracker(['a', 'b']);
  edge.open('y', 0);
  edge.record('a', 0, 10, 'ok');
  const e = edge.close(500)!;
  t.equal(e.max_gap_ms, 500, 'a worker never answered in the window: the whole window is its gap');

  const tail = new WindowTracker(['a']);
  tail.open('z', 0);
  tail.record('a', 0, 100, 'ok');
  t.equal(tail.close(1000)!.max_gap_ms, 900, 'last answer to window end');
});

t.test('opening a window closes the previous one', async (t) => {
  const w = new WindowTracker(['a']);
  w.open('one', 0);
  w.record('a', 1, 2, 'fail');
  w.open('two', 10);
  w.record('a', 11, 12, 'ok');
  w.close(20);
  t.same(w.closed.map((x) => [x.name, x.requests, x.failed]), [['one', 1, 1], ['two', 1, 0]]);
  t.equal(w.close(30), undefined, 'nothing open');
});

t.test('schedule: every fault kind, add → drain → remove in order; a subset keeps the order', async (t) => {
  const all = schedule();
  t.same([...all].sort(), [...FAULTS].sort());
  t.ok(all.indexOf('backend-add') < all.indexOf('backend-drain') && all.indexOf('backend-drain') < all.indexOf('backend-remove'));
  t.same(schedule(['conntrack-full', 'agent-sigkill']), ['agent-sigkill', 'conntrack-full']);
  t.throws(() => schedule(['nope' as never]), /unknown fault nope/);
});

function report(over: Partial<Record<string, Partial<SoakReport['faults'][number]>>> = {}, rss: [number, number] = [100, 101]): SoakReport {
  return {
    faults: FAULTS.map((fault) => ({ fault, requests: 10, failed: 0, resets: 0, max_gap_ms: 50, address_changed: false, ...over[fault] })),
    rss_start_mb: rss[0], rss_end_mb: rss[1],
  };
}

t.test('soakReport: the issue format, only fault windows, fields in order', async (t) => {
  const mk = (name: string, failed = 0) => ({ name, requests: 5, failed, resets: 0, max_gap_ms: 12, samples: [], served: {} });
  const r = soakReport([mk('warmup'), mk('agent-sigkill', 1), mk('pool-edit')], { 'pool-edit': true }, 100 * 1048576, 103.26 * 1048576);
  t.same(JSON.parse(JSON.stringify(r)), {
    faults: [
      { fault: 'agent-sigkill', requests: 5, failed: 1, resets: 0, max_gap_ms: 12, address_changed: false },
      { fault: 'pool-edit', requests: 5, failed: 0, resets: 0, max_gap_ms: 12, address_changed: true },
    ],
    rss_start_mb: 100,
    rss_end_mb: 103.3,
  });
  t.same(Object.keys(r.faults[0]!), ['fault', 'requests', 'failed', 'resets', 'max_gap_ms', 'address_changed']);
  t.same(Object.keys(r), ['faults', 'rss_start_mb', 'rss_end_mb']);
});

t.test('targets: met when clean, each miss named', async (t) => {
  t.ok(checkTargets(report()).every((c) => c.met), 'a clean report meets every target');
  const miss = (r: SoakReport): string[] => checkTargets(r).filter((c) => !c.met).map((c) => c.target);
  t.match(miss(report({ 'agent-sigkill': { resets: 2, failed: 2 } })), [/SIGKILL/]);
  t.match(miss(report({ 'agent-restart': { resets: 1 } })), [/clean restart/]);
  t.match(miss(report({ 'api-outage': { failed: 3 } })), [/API outage/]);
  t.same(miss(report({ 'api-outage': { resets: 0, max_gap_ms: 9000 } })), [], 'a long gap alone is no API-outage failure');
  t.match(miss(report({ 'backend-drain': { failed: 1 } })), [/drain/]);
  t.match(miss(report({ 'bad-manifest': { resets: 1 } })), [/malformed manifest/]);
  t.match(miss(report({ 'watch-drop': { address_changed: true } })), [/address/]);
  t.same(miss(report({ 'conntrack-full': { failed: 5 } })), [], 'conntrack-full has no zero-failure target');
  t.match(miss(report({}, [100, 111])), [/RSS/]);
  t.same(miss(report({}, [100, 109])), [], 'within 10% of the start');
  t.same(miss(report({}, [40, 47])), [], 'within 8 MB of a small start');
});

t.test('markdown: one row per fault, the targets, the notes', async (t) => {
  const r = report({ 'api-outage': { failed: 3 } });
  const md = markdownTable(r, checkTargets(r), ['a note']);
  t.match(md, /\| api-outage \| 10 \| 3 \| 0 \| 50 \| no \|/);
  t.match(md, /\| API outage: zero failed \| \*\*no\*\* \| failed 3 \|/);
  t.match(md, /- a note/);
  t.equal(md.split('\n').filter((l) => /^\| (agent|api|watch|bgp|backend|pool|bad|conntrack)-/.test(l)).length, FAULTS.length);
});

t.test('rssEnds: medians of the first and last samples, robust to one GC dip or spike', async (t) => {
  const samples = [100, 90, 140, 100, 101, 99, 100, 102, 98, 100, ...Array(30).fill(120), 110, 111, 60, 109, 110, 112, 108, 200, 110, 110];
  t.same(rssEnds(samples), { start: 100, end: 110 });
  t.same(rssEnds([5]), { start: 5, end: 5 }, 'one sample is both ends');
  t.same(rssEnds([1, 2, 3, 4]), { start: 1.5, end: 3.5 }, 'few samples: each half');
  t.same(rssEnds([]), { start: 0, end: 0 });
  t.equal(RSS_EDGE, 10);
});
