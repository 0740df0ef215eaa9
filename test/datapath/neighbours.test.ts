/**
 * NeighbourPrimer: batched (one route lookup and one neighbour write per
 * batch for all new backends, up to 10,000 per call), incremental (only
 * changes cost calls), reference-counted per next hop, coalescing (one batch
 * in flight, one follow-up with the latest set), and failures reported,
 * retried, never rejected. First against a recording netlink, then against
 * the real kernel in namespaces this file creates.
 */
import t from 'tap';
import { NeighbourPrimer, type NeighbourNetlink } from '../../src/datapath/neighbours.js';
import type { NeighbourRequest, NeighbourResult, RouteNextHop } from '../../src/native/libbpf.js';
import { withLab } from '../support/lab.js';
import { privilegedUnavailable } from '../support/privileged.js';

const skip = privilegedUnavailable();
const ETH0 = 2;
const GATEWAYS = ['198.18.0.254', '198.18.0.253'];

/** On-link: 198.18.1.0/24 and 198.19.0.0/16; through a gateway: 203.0.113.0/24 (even → .254, odd → .253); local: 198.18.0.1; 192.0.2.0/24 has no route. */
function route(address: string): RouteNextHop {
  if (address === '198.18.0.1') return { address, ifindex: 1, dev: 'lo', type: 'local' };
  if (address.startsWith('198.18.1.') || address.startsWith('198.19.')) return { address, ifindex: ETH0, dev: 'eth0', type: 'unicast' };
  if (address.startsWith('203.0.113.')) {
    return { address, ifindex: ETH0, dev: 'eth0', gateway: GATEWAYS[Number(address.split('.')[3]) % 2], type: 'unicast' };
  }
  return { address, type: 'unreachable', error: `route to ${address}: Network is unreachable (ENETUNREACH)` };
}

/** Records every call; `gate` (when set) holds routeNextHops until released. */
class RecordingNetlink implements NeighbourNetlink {
  readonly lookups: string[][] = [];
  readonly writes: NeighbourRequest[][] = [];
  refuse = new Set<string>();
  refusal = 'No such device (ENODEV)';
  failLookups = false;
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;

  hold(): void {
    this.gate = new Promise((resolve) => (this.open = resolve));
  }

  release(): void {
    this.open?.();
    this.gate = undefined;
  }

  async routeNextHops(addresses: string[]): Promise<RouteNextHop[]> {
    this.lookups.push([...addresses]);
    await this.gate;
    if (this.failLookups) throw new Error('routeNextHops: netns: cannot open /run/netns/gone');
    return addresses.map(route);
  }

  async neighboursSet(entries: NeighbourRequest[]): Promise<NeighbourResult[]> {
    this.writes.push(entries.map((e) => ({ ...e })));
    return entries.map(({ address, ifindex }) => (this.refuse.has(address)
      ? { address, ifindex, error: `managed neighbour ${address} on ifindex ${ifindex}: ${this.refusal}` }
      : { address, ifindex }));
  }
}

const onLink = (n: number, from = 0): string[] => Array.from({ length: n }, (_, i) => `198.18.1.${from + i + 1}`);
const routed = (n: number): string[] => Array.from({ length: n }, (_, i) => `203.0.113.${i + 1}`);
const managedIn = (write: NeighbourRequest[] | undefined, managed: boolean): string[] =>
  (write ?? []).filter((e) => e.managed === managed).map((e) => e.address).sort();

t.test('a sync with many backends is one lookup and one write; the same set again costs nothing', async (t) => {
  const netlink = new RecordingNetlink();
  const errors: string[] = [];
  const primer = new NeighbourPrimer((b, m) => errors.push(`${b}: ${m}`), { netlink });
  const backends = [...onLink(200), ...routed(100), '198.18.0.1'];
  await primer.sync(backends);
  t.equal(netlink.lookups.length, 1, 'one routeNextHops call');
  t.equal(netlink.lookups[0]!.length, 301, 'for all 301 backends');
  t.equal(netlink.writes.length, 1, 'one neighboursSet call');
  t.same(managedIn(netlink.writes[0], true), [...onLink(200), ...GATEWAYS].sort(), '200 on-link backends and 2 routers, each once');
  t.equal(primer.primed().length, 202);
  t.ok(primer.primed().includes('198.18.0.254%eth0'), 'primed() names address%dev');
  t.same(errors, []);

  await primer.sync([...backends].reverse());
  await primer.sync(new Set(backends));
  t.equal(netlink.lookups.length + netlink.writes.length, 2, 'unchanged sets make no call');
});

t.test('a first sync of 25,000 backends goes as calls of at most 10,000, one after the other', async (t) => {
  const netlink = new RecordingNetlink();
  const primer = new NeighbourPrimer(undefined, { netlink });
  const backends = Array.from({ length: 25_000 }, (_, i) => `198.19.${i >> 8}.${i & 0xff}`);
  await primer.sync(backends);
  t.same(netlink.lookups.map((l) => l.length), [10_000, 10_000, 5_000]);
  t.same(netlink.writes.map((w) => w.length), [10_000, 10_000, 5_000]);
  t.same(netlink.lookups.flat(), backends, 'each backend looked up once, in order');
  t.equal(primer.primed().length, 25_000);
});

t.test('only changes cost anything; next hops are reference-counted', async (t) => {
  const netlink = new RecordingNetlink();
  const primer = new NeighbourPrimer(undefined, { netlink });
  await primer.sync([...onLink(10), ...routed(4)]);
  // Drop two on-link backends and every backend behind .254 but one; add two of each kind.
  const next = [...onLink(8), '198.18.1.50', '198.18.1.51', '203.0.113.1', '203.0.113.2', '203.0.113.3', '203.0.113.5'];
  await primer.sync(next);
  t.same(netlink.lookups[1], ['198.18.1.50', '198.18.1.51', '203.0.113.5'], 'only new backends are looked up');
  t.same(managedIn(netlink.writes[1], true), ['198.18.1.50', '198.18.1.51'], 'new on-link hops managed; the router already is');
  t.same(managedIn(netlink.writes[1], false), ['198.18.1.10', '198.18.1.9'], 'hops without users released');

  await primer.sync(['203.0.113.2']);
  t.same(managedIn(netlink.writes[2], false), [...onLink(8), '198.18.1.50', '198.18.1.51', '198.18.0.253'].sort(),
    'the router behind odd addresses goes with its last user; .254 stays for 203.0.113.2');
  t.same(primer.primed(), ['198.18.0.254%eth0']);
  await primer.sync([]);
  t.same(managedIn(netlink.writes[3], false), ['198.18.0.254']);
  t.same(primer.primed(), []);
});

t.test('change() costs the backends it names: an edit beside 20,000 backends looks up its one new address', async (t) => {
  const netlink = new RecordingNetlink();
  let now = 1_000_000;
  const primer = new NeighbourPrimer(undefined, { netlink, retryMs: 30_000, now: () => now });
  const many = Array.from({ length: 20_000 }, (_, i) => `198.19.${i >> 8}.${i & 0xff}`);
  await primer.sync([...many, '198.18.1.1', '203.0.113.1', '192.0.2.7']);
  netlink.lookups.length = 0;
  netlink.writes.length = 0;

  // Two backends on one address (two ports): the address stays until both are gone.
  await primer.change(['198.18.1.40', '198.18.1.40'], []);
  t.same(netlink.lookups, [['198.18.1.40']], 'one lookup, of the new address only');
  t.same(managedIn(netlink.writes[0], true), ['198.18.1.40']);
  await primer.change([], ['198.18.1.40']);
  t.equal(netlink.writes.length, 1, 'one of its two backends gone: the address is still wanted, nothing written');
  await primer.change([], ['198.18.1.40']);
  t.same(managedIn(netlink.writes[1], false), ['198.18.1.40'], 'the last one gone: released');

  // A backend through a router: the router's entry is reference-counted across change() and sync() alike.
  await primer.change(['203.0.113.3'], ['203.0.113.1']);
  t.same(netlink.lookups.at(-1), ['203.0.113.3']);
  t.equal(netlink.writes.length, 2, 'the router (.253) keeps a user: no write');
  t.ok(primer.primed().includes('198.18.0.253%eth0'));

  // The unroutable backend is retried by a change() after retryMs, without a whole diff.
  const before = netlink.lookups.length;
  await primer.change(['198.18.1.41'], []);
  t.same(netlink.lookups.slice(before), [['198.18.1.41']], 'not due yet: only the new address');
  now += 30_000;
  await primer.change(['198.18.1.42'], []);
  t.same(netlink.lookups.at(-1)!.sort(), ['192.0.2.7', '198.18.1.42'], 'due: retried with the new address');

  // A removal of something never added, and an add and remove in one call, are no-ops.
  const writes = netlink.writes.length;
  await primer.change(['198.18.1.43'], ['198.18.1.43', '198.18.9.9']);
  t.equal(netlink.writes.length, writes, 'nothing to write');

  // A whole sync after changes agrees with them.
  const lookups = netlink.lookups.length;
  await primer.sync([...many, '198.18.1.1', '203.0.113.3', '192.0.2.7', '198.18.1.41', '198.18.1.42']);
  t.equal(netlink.lookups.length, lookups, 'a sync of the set the changes made looks nothing up');
  t.equal(netlink.writes.length, writes, 'and writes nothing');
  t.equal(primer.primed().length, 20_000 + 4, 'every on-link backend and the router');
});

t.test('syncs during a running batch coalesce into one follow-up with the latest set', async (t) => {
  const netlink = new RecordingNetlink();
  const primer = new NeighbourPrimer(undefined, { netlink });
  netlink.hold();
  const first = primer.sync(onLink(100));
  for (let i = 0; i < 100 && netlink.lookups.length === 0; i++) await new Promise((resolve) => setImmediate(resolve));
  t.equal(netlink.lookups.length, 1, 'the first batch is waiting for its lookups');
  const during = [primer.sync(onLink(150)), primer.sync(onLink(120)), primer.sync([...onLink(110), '198.18.1.200'])];
  t.equal(during[0], during[2], 'every sync during the batch gets the same follow-up');
  t.equal(netlink.lookups.length, 1, 'nothing else started while the batch runs');
  netlink.release();
  await Promise.all([first, ...during]);
  t.equal(netlink.lookups.length, 2, 'two batches for four syncs');
  t.same(netlink.lookups[1], [...onLink(10, 100), '198.18.1.200'], 'the follow-up looks up only what the latest set adds');
  t.same(primer.primed().sort(), [...onLink(110), '198.18.1.200'].map((a) => `${a}%eth0`).sort(), 'primed the latest set');
  t.notOk(netlink.writes.flat().some((e) => e.address === '198.18.1.150'), 'a set superseded before its batch never reaches the kernel');
});

t.test('failures are reported, retried later and never reject', async (t) => {
  let now = 1_000_000;
  const netlink = new RecordingNetlink();
  const errors: Array<[string, string]> = [];
  const primer = new NeighbourPrimer((b, m) => {
    errors.push([b, m]);
    throw new Error('a logger that throws');
  }, { netlink, retryMs: 30_000, now: () => now });
  const unhandled: unknown[] = [];
  const onUnhandled = (err: unknown): void => void unhandled.push(err);
  process.on('unhandledRejection', onUnhandled);
  t.teardown(() => process.off('unhandledRejection', onUnhandled));

  netlink.refuse.add('198.18.1.2');
  await primer.sync(['198.18.1.1', '198.18.1.2', '192.0.2.9', 'not-an-address', '198.18.0.1']);
  t.same(netlink.lookups[0], ['198.18.1.1', '198.18.1.2', '192.0.2.9', '198.18.0.1'], 'an address that is not one is never sent');
  t.same(errors.map(([b]) => b).sort(), ['192.0.2.9', '198.18.1.2', 'not-an-address']);
  t.match(errors.find(([b]) => b === '192.0.2.9')![1], 'no usable route to backend 192.0.2.9 (route to 192.0.2.9: Network is unreachable (ENETUNREACH))');
  t.match(errors.find(([b]) => b === '198.18.1.2')![1], 'cannot add a managed neighbour for 198.18.1.2 on eth0 (1 backends use it): managed neighbour 198.18.1.2 on ifindex 2: No such device (ENODEV)');
  t.same(primer.primed(), ['198.18.1.1%eth0']);

  errors.length = 0;
  await primer.sync(['198.18.1.1', '198.18.1.2', '192.0.2.9', 'not-an-address', '198.18.0.1']);
  t.equal(netlink.lookups.length + netlink.writes.length, 2, 'nothing retried before retryMs');
  now += 30_000;
  netlink.refuse.clear();
  await primer.sync(['198.18.1.1', '198.18.1.2', '192.0.2.9', 'not-an-address', '198.18.0.1']);
  t.same(netlink.lookups[1], ['192.0.2.9'], 'the unreachable backend is looked up again');
  t.same(managedIn(netlink.writes[1], true), ['198.18.1.2'], 'the refused hop is written again');
  t.same(errors, [], 'a backend still without a route is not reported twice');
  t.same(primer.primed().sort(), ['198.18.1.1%eth0', '198.18.1.2%eth0']);

  netlink.failLookups = true;
  await primer.sync(['198.18.1.3']);
  t.equal(errors.length, 1, 'a failed batch is reported once');
  t.match(errors[0]![1], 'neighbour priming failed, next try in 30 s: routeNextHops: netns: cannot open /run/netns/gone');
  t.equal(errors[0]![0], '', 'concerning no single backend');
  netlink.failLookups = false;
  await primer.sync(['198.18.1.3']);
  t.equal(netlink.lookups.length, 3, 'paused until retryMs after a failed batch');
  now += 30_000;
  await primer.sync(['198.18.1.3']);
  t.same(netlink.lookups[3], ['198.18.1.3'], 'then tried again');
  t.same(managedIn(netlink.writes.at(-1), false).sort(), ['198.18.1.1', '198.18.1.2'], 'and the removals that waited are done');
  t.same(primer.primed(), ['198.18.1.3%eth0']);

  const broken = new NeighbourPrimer(undefined, { netlink: { routeNextHops: () => { throw new Error('sync throw'); }, neighboursSet: async () => [] } });
  await broken.sync(['198.18.1.1']);
  await new Promise((resolve) => setImmediate(resolve));
  t.same(unhandled, [], 'no unhandled rejection, even from a synchronous throw');
});

t.test('many failures in one batch: a few reported, the rest summed up; a full neighbour table says which sysctl', async (t) => {
  const netlink = new RecordingNetlink();
  const errors: Array<[string, string]> = [];
  const primer = new NeighbourPrimer((b, m) => errors.push([b, m]), { netlink });
  const unroutable = Array.from({ length: 40 }, (_, i) => `192.0.2.${i + 1}`);
  await primer.sync(unroutable);
  t.equal(errors.length, 6, 'five one by one and one summary');
  t.same(errors.slice(0, 5).map(([b]) => b), unroutable.slice(0, 5));
  t.same(errors[5], ['', `35 more like these in this batch, the last: no usable route to backend 192.0.2.40 (route to 192.0.2.40: Network is unreachable (ENETUNREACH)); next hop not primed, next try in 30 s`]);

  errors.length = 0;
  netlink.refuse = new Set(onLink(3));
  netlink.refusal = 'No buffer space available (ENOBUFS)';
  await primer.sync(onLink(3));
  t.equal(errors.length, 3);
  t.match(errors[0]![1], 'No buffer space available (ENOBUFS); the kernel neighbour table is full: raise net.ipv4.neigh.default.gc_thresh3');
});

t.test('against the kernel: managed entries for on-link backends and routers, released when unused', { skip }, async (t) => {
  const lab = await withLab(t, 'phxr');
  await lab.addNamespace('lb');
  await lab.addNamespace('peer');
  await lab.addLink(
    { ns: 'lb', ifname: 'phxr0', addrs: ['198.18.20.1/24', '2001:db8:20::1/64'] },
    { ns: 'peer', ifname: 'phxr1', addrs: ['198.18.20.2/24', '198.18.20.3/24', '2001:db8:20::2/64'] },
  );
  await lab.exec('lb', ['ip', 'route', 'add', '203.0.113.0/24', 'via', '198.18.20.2']);
  await lab.exec('lb', ['ip', '-6', 'route', 'add', '2001:db8:99::/48', 'via', '2001:db8:20::2']);
  const errors: string[] = [];
  const primer = new NeighbourPrimer((b, m) => errors.push(`${b}: ${m}`), { netns: lab.nsPath('lb') });
  const neighbours = async (): Promise<Map<string, { managed?: null; state: string[] }>> => {
    const res = await lab.exec('lb', ['ip', '-j', '-d', 'neigh', 'show', 'dev', 'phxr0']);
    return new Map((JSON.parse(res.stdout) as Array<{ dst: string; managed?: null; state: string[] }>).map((n) => [n.dst, n]));
  };
  const behindRouter = Array.from({ length: 200 }, (_, i) => `203.0.113.${i + 1}`);
  const behindRouter6 = Array.from({ length: 200 }, (_, i) => `2001:db8:99::${(i + 1).toString(16)}`);
  const start = performance.now();
  await primer.sync(['198.18.20.2', '198.18.20.3', '198.18.20.1', ...behindRouter, ...behindRouter6]);
  const ms = performance.now() - start;
  t.same(errors, []);
  t.same(primer.primed().sort(), ['198.18.20.2%phxr0', '198.18.20.3%phxr0', '2001:db8:20::2%phxr0'].sort(), 'two on-link backends and the two routers (one per family); the local address needs none');
  let table = await neighbours();
  for (const a of ['198.18.20.2', '198.18.20.3', '2001:db8:20::2']) t.ok(table.get(a) && 'managed' in table.get(a)!, `${a} managed in the kernel`);
  t.comment(`first sync of 403 backends: ${ms.toFixed(1)} ms`);

  await primer.sync(['198.18.20.2', ...behindRouter.slice(0, 1)]);
  table = await neighbours();
  t.ok('managed' in table.get('198.18.20.2')!, 'still used: still managed');
  t.notOk(table.get('198.18.20.3') && 'managed' in table.get('198.18.20.3')!, 'unused on-link hop released');
  t.notOk(table.get('2001:db8:20::2') && 'managed' in table.get('2001:db8:20::2')!, 'unused IPv6 router released');
  t.same(errors, []);
});

t.test('backends reached through a gateway are reported (DSR L2 dispatch cannot reach them), once per change', async (t) => {
  const netlink = new RecordingNetlink();
  let reports = 0;
  const primer = new NeighbourPrimer(undefined, { netlink, onOffLinkChange: () => reports++ });
  await primer.sync([...onLink(2), ...routed(2), '198.18.0.1']);
  t.same(Object.fromEntries(primer.offLink()), { '203.0.113.1': '198.18.0.253', '203.0.113.2': '198.18.0.254' });
  t.equal(reports, 1);
  await primer.change(onLink(1, 5), []);
  t.equal(reports, 1, 'an on-link backend added changes nothing off-link');
  await primer.change([], ['203.0.113.1']);
  t.same([...primer.offLink().keys()], ['203.0.113.2'], 'a removed backend is forgotten');
  t.equal(reports, 2);
});
