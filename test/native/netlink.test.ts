/**
 * rtnetlink in the addon, in namespaces this file creates: routeNextHops
 * agrees with `ip -j route get` (on-link, through a router, local, no route,
 * unreachable/prohibit/blackhole routes, broadcast as 'other'; IPv4 and
 * IPv6; so every type code the addon sends is seen), neighboursSet
 * creates entries `ip -d neigh` shows as managed and releasing drops the
 * flag, per-entry errors come back as results, bad arguments throw, and
 * 2,000 entries in one call take milliseconds.
 *
 *   lb (phxn0: 198.18.10.1/24, 198.18.16.1/21, 2001:db8:10::1/64, 2001:db8:16::1/64)
 *     <-> peer (phxn1: 198.18.10.2/24, 2001:db8:10::2/64)
 */
import t from 'tap';
import { readlinkSync } from 'node:fs';
import { addon, type RouteNextHop } from '../../src/native/libbpf.js';
import { withLab, type Lab } from '../support/lab.js';
import { privilegedUnavailable } from '../support/privileged.js';
import { waitFor } from '../support/wait.js';
import { bpfErrorOf, bpfRejectionOf } from './bpf-error.js';

const skip = privilegedUnavailable();
const hostNetns = readlinkSync('/proc/thread-self/ns/net');

interface IpRoute { type?: string; dev: string; gateway?: string }
interface IpNeigh { dst: string; lladdr?: string; managed?: null; state: string[] }

async function labWithRoutes(t: Parameters<typeof withLab>[0]): Promise<{ lab: Lab; ns: string; ifindex: number }> {
  const lab = await withLab(t, 'phxn');
  await lab.addNamespace('lb');
  await lab.addNamespace('peer');
  await lab.addLink(
    { ns: 'lb', ifname: 'phxn0', addrs: ['198.18.10.1/24', '198.18.16.1/21', '2001:db8:10::1/64', '2001:db8:16::1/64'] },
    { ns: 'peer', ifname: 'phxn1', addrs: ['198.18.10.2/24', '2001:db8:10::2/64'] },
  );
  const routes = [
    ['203.0.113.0/24', 'via', '198.18.10.2'],
    ['2001:db8:20::/48', 'via', '2001:db8:10::2'],
    ['unreachable', '198.51.100.0/26'],
    ['prohibit', '198.51.100.64/26'],
    ['blackhole', '198.51.100.128/26'],
    ['unreachable', '2001:db8:30::/48'],
    ['blackhole', '2001:db8:31::/48'],
  ];
  for (const r of routes) await lab.exec('lb', ['ip', 'route', 'add', ...r]);
  return { lab, ns: lab.nsPath('lb'), ifindex: await lab.ifIndex('lb', 'phxn0') };
}

async function ipRouteGet(lab: Lab, address: string): Promise<IpRoute | string> {
  const res = await lab.exec('lb', ['ip', '-j', 'route', 'get', address], { allowFail: true });
  if (res.code !== 0) return res.stderr.trim();
  return (JSON.parse(res.stdout) as IpRoute[])[0]!;
}

async function neighbours(lab: Lab): Promise<Map<string, IpNeigh>> {
  const res = await lab.exec('lb', ['ip', '-j', '-d', 'neigh', 'show', 'dev', 'phxn0']);
  return new Map((JSON.parse(res.stdout) as IpNeigh[]).map((n) => [n.dst, n]));
}

t.test('routeNextHops agrees with ip route get, IPv4 and IPv6', { skip }, async (t) => {
  const { lab, ns, ifindex } = await labWithRoutes(t);
  const cases: Array<[string, RouteNextHop['type'], string | undefined]> = [
    ['198.18.10.2', 'unicast', undefined],
    ['203.0.113.7', 'unicast', '198.18.10.2'],
    ['198.18.10.1', 'local', undefined],
    ['198.18.10.255', 'other', undefined], // broadcast
    ['192.0.2.9', 'unreachable', 'ENETUNREACH'],
    ['198.51.100.9', 'unreachable', 'EHOSTUNREACH'],
    ['198.51.100.70', 'unreachable', 'EACCES'],
    ['198.51.100.130', 'unreachable', 'EINVAL'],
    ['2001:db8:10::2', 'unicast', undefined],
    ['2001:db8:20::7', 'unicast', '2001:db8:10::2'],
    ['2001:db8:10::1', 'local', undefined],
    ['2001:db8:99::1', 'unreachable', 'ENETUNREACH'],
    ['2001:db8:30::1', 'unreachable', 'EHOSTUNREACH'],
    ['2001:db8:31::1', 'unreachable', 'EINVAL'],
  ];
  const hops = await addon().routeNextHops(cases.map(([a]) => a), ns);
  t.equal(hops.length, cases.length, 'one result per address, in order');
  for (const [i, [address, type, detail]] of cases.entries()) {
    const hop = hops[i]!;
    const ip = await ipRouteGet(lab, address);
    t.equal(hop.address, address);
    t.equal(hop.type, type, `${address}: ${type}`);
    if (typeof ip === 'string') {
      t.match(hop.error, `route to ${address} in netns ${ns}: `, `${address}: ip route get fails too (${ip})`);
      t.match(hop.error, `(${detail})`);
      t.equal(hop.ifindex, undefined);
      continue;
    }
    t.equal(hop.error, undefined);
    const ipType = ip.type ?? 'unicast';
    t.equal(['unicast', 'local'].includes(ipType) ? ipType : 'other', type, `${address}: same type as ip route get (${ipType})`);
    t.equal(hop.dev, ip.dev, `${address}: dev ${ip.dev}`);
    t.equal(hop.gateway, ip.gateway, `${address}: gateway ${ip.gateway ?? 'none'}`);
    t.equal(hop.gateway, detail);
    if (type === 'unicast') t.equal(hop.ifindex, ifindex);
  }
  t.same(await addon().routeNextHops([], ns), [], 'no addresses, no results');
  t.equal(readlinkSync('/proc/thread-self/ns/net'), hostNetns, 'the JS thread never left the host netns');
});

t.test('neighboursSet: managed entries resolve; release drops the flag', { skip }, async (t) => {
  const { lab, ns, ifindex } = await labWithRoutes(t);
  const peerMac = await lab.mac('peer', 'phxn1');
  const results = await addon().neighboursSet([
    { address: '198.18.10.2', ifindex, managed: true },
    { address: '2001:db8:10::2', ifindex, managed: true },
    { address: '198.18.10.77', ifindex, managed: true }, // nobody answers
    { address: '198.18.10.78', ifindex: 999_999, managed: true },
  ], ns);
  t.same(results.slice(0, 3), [
    { address: '198.18.10.2', ifindex },
    { address: '2001:db8:10::2', ifindex },
    { address: '198.18.10.77', ifindex },
  ], 'three entries written');
  t.match(results[3], { address: '198.18.10.78', ifindex: 999_999, error: /managed neighbour 198\.18\.10\.78 on ifindex 999999 in netns .*: .*\(ENODEV\)/ },
    'an unknown interface is that entry\'s error');

  const resolved = await waitFor('managed entries to resolve', 5000, async () => {
    const n = await neighbours(lab);
    return ['198.18.10.2', '2001:db8:10::2'].every((a) => n.get(a)?.lladdr === peerMac) && n;
  }, { everyMs: 50 });
  for (const a of ['198.18.10.2', '2001:db8:10::2', '198.18.10.77']) {
    t.ok(resolved.get(a) && 'managed' in resolved.get(a)!, `${a} is managed (ip -d neigh)`);
  }
  t.equal(resolved.get('198.18.10.2')!.lladdr, peerMac, 'resolved to the peer MAC without any traffic of ours');

  const released = await addon().neighboursSet([
    { address: '198.18.10.2', ifindex, managed: false },
    { address: '2001:db8:10::2', ifindex, managed: false },
    { address: '198.18.10.77', ifindex, managed: false },
    { address: '198.18.10.79', ifindex, managed: false }, // never existed
  ], ns);
  t.same(released, [
    { address: '198.18.10.2', ifindex },
    { address: '2001:db8:10::2', ifindex },
    { address: '198.18.10.77', ifindex },
    { address: '198.18.10.79', ifindex },
  ], 'releases succeed, also for absent and unresolved entries');
  const after = await neighbours(lab);
  for (const a of ['198.18.10.2', '2001:db8:10::2']) {
    t.notOk('managed' in after.get(a)!, `${a}: flag dropped`);
    t.same(after.get(a)!.state, ['STALE'], `${a}: left STALE to age out`);
    t.equal(after.get(a)!.lladdr, peerMac, `${a}: MAC kept`);
  }
  t.notOk(after.has('198.18.10.77'), 'an entry that never resolved is deleted');
  t.notOk(after.has('198.18.10.79'), 'releasing an absent entry creates nothing');
});

t.test('bad arguments throw synchronously; a missing namespace rejects', { skip }, async (t) => {
  const cases: Array<[() => unknown, string]> = [
    [() => addon().routeNextHops('198.18.10.2' as unknown as string[]), 'routeNextHops: addresses must be an array'],
    [() => addon().routeNextHops(['198.18.10.2', 'nope']), "routeNextHops: addresses[1] ('nope') is not an IPv4 or IPv6 address"],
    [() => addon().routeNextHops([7 as unknown as string]), 'routeNextHops: addresses[0] must be a string'],
    [() => addon().neighboursSet([{ address: '198.18.10.2', ifindex: 0, managed: true }]), 'neighboursSet: entries[0].ifindex must be an integer in [1, '],
    [() => addon().neighboursSet([{ address: '198.18.10.2', ifindex: 2, managed: 'yes' as unknown as boolean }]), 'neighboursSet: entries[0].managed must be a boolean'],
    [() => addon().neighboursSet([{ address: '198.18.10.2%x', ifindex: 2, managed: true }]), "entries[0].address ('198.18.10.2%x') is not an IPv4 or IPv6 address"],
    [() => addon().neighboursSet([null as unknown as { address: string; ifindex: number; managed: boolean }]), 'neighboursSet: entries[0] must be an object'],
  ];
  for (const [call, message] of cases) {
    const e = bpfErrorOf(call);
    t.equal(e.code, 'EINVAL');
    t.match(e.message, message);
  }
  let e = await bpfRejectionOf(addon().routeNextHops(['198.18.10.2'], '/run/netns/phxn-missing'));
  t.equal(e.code, 'ENOENT');
  t.match(e.message, 'routeNextHops: netns: cannot open /run/netns/phxn-missing');
  e = await bpfRejectionOf(addon().neighboursSet([], '/run/netns/phxn-missing'));
  t.match(e.message, 'neighboursSet: netns: cannot open /run/netns/phxn-missing');
});

t.test('2,000 addresses per call take milliseconds', { skip }, async (t) => {
  const { lab, ns, ifindex } = await labWithRoutes(t);
  // 1,000 on-link IPv4 (198.18.16.0/21) and 1,000 on-link IPv6 addresses nobody answers for:
  // each family's neighbour table holds 1,024 entries (gc_thresh3) for all namespaces
  // together, so stay under it and release them at once.
  const addresses = [
    ...Array.from({ length: 1000 }, (_, i) => `198.18.${16 + Math.floor(i / 250)}.${(i % 250) + 2}`),
    ...Array.from({ length: 1000 }, (_, i) => `2001:db8:16::${(i + 0x100).toString(16)}`),
  ];
  t.equal(new Set(addresses).size, 2000, '2,000 distinct addresses');

  let start = performance.now();
  const pending = addon().routeNextHops(addresses, ns);
  const syncMs = performance.now() - start;
  const hops = await pending;
  const routeMs = performance.now() - start;
  t.equal(hops.filter((h) => h.type === 'unicast' && h.ifindex === ifindex && h.gateway === undefined).length, 2000, 'all on-link through phxn0');

  start = performance.now();
  const set = await addon().neighboursSet(addresses.map((address) => ({ address, ifindex, managed: true })), ns);
  const manageMs = performance.now() - start;
  t.equal(set.filter((r) => r.error === undefined).length, 2000, 'all 2,000 written');
  const table = await neighbours(lab);
  t.equal(addresses.filter((a) => table.get(a) && 'managed' in table.get(a)!).length, 2000, 'ip -d neigh shows all 2,000 managed');

  start = performance.now();
  const released = await addon().neighboursSet(addresses.map((address) => ({ address, ifindex, managed: false })), ns);
  const releaseMs = performance.now() - start;
  t.equal(released.filter((r) => r.error === undefined).length, 2000, 'all 2,000 released');
  const left = await neighbours(lab);
  t.equal(addresses.filter((a) => left.has(a)).length, 0, 'unresolved entries are gone');

  t.comment(`routeNextHops x2000: ${routeMs.toFixed(1)} ms (${syncMs.toFixed(1)} ms of it on the JS thread)`);
  t.comment(`neighboursSet managed x2000: ${manageMs.toFixed(1)} ms; release x2000: ${releaseMs.toFixed(1)} ms`);
  t.ok(routeMs < 2000, 'route lookups < 2 s');
  t.ok(manageMs < 2000, 'managed writes < 2 s');
  t.ok(releaseMs < 2000, 'releases < 2 s');
});
