/**
 * BPF_PROG_TEST_RUN fixtures for bpf/lb.bpf.c, as data rows (Katran
 * PacketAttributes style): input frame, expected verdict, expected output
 * frame (built independently with the packet builder, so checksums are
 * checked byte for byte) and the exact change of every reason counter.
 * Rows run in order against one loaded data path; rows of one flow build on
 * the conntrack state the earlier rows left.
 */
import t, { type Test } from 'tap';
import { privilegedUnavailable } from '../support/privileged.js';
import { withLab, type Lab } from '../support/lab.js';
import { hexDiff, inetChecksum, parse, pkt, truncate, IPPROTO } from '../../src/lab/packet.js';
import { ADDR, baseFrontends, FixtureEnv, MAC, PORT_MIN, XDP } from '../../src/lab/fixture-env.js';
import { decodeL2Foreign, encodeFlow, encodeIfMac, encodeResponderKey, STAT_REASONS, u32Key, type StatReason } from '../../src/datapath/abi.js';
import { buildMaglevTable, DEFAULT_MAGLEV_MAX_M, flowHash, maglevTableSize, type MaglevMember } from '../../src/datapath/maglev.js';
import type { Frontend } from '../../src/model/types.js';

interface Row {
  name: string;
  /** Runs before the input is built (may send packets of its own; their counters are not judged). */
  setup?: (env: FixtureEnv) => void;
  after?: (env: FixtureEnv) => void;
  ingress?: 'fx0' | 'fb0';
  input: (env: FixtureEnv) => Buffer;
  verdict: keyof typeof XDP;
  /** Exact output frame; default: the input unchanged. */
  output?: (env: FixtureEnv) => Buffer;
  /** Further checks of the output. */
  check?: (t: Test, out: Buffer, env: FixtureEnv) => void;
  /** Exact counter deltas; every reason not listed must not move. */
  stats: Partial<Record<StatReason, number>>;
}


const PAYLOAD = Buffer.from('pharos fixture payload');
const TCP = IPPROTO.TCP;
const UDP = IPPROTO.UDP;

// ------------------------------------------------------------------ frame helpers

type L4 = 'tcp' | 'udp';

interface Side { src: string; dst: string; sport: number; dport: number }

/** `hops`: routers passed since the sender (TTL / hop limit 64 - hops); pharos counts as one when it transmits. */
function frame(family: 4 | 6, macs: { src: string; dst: string }, s: Side, l4: L4, opts: { flags?: string; udpChecksum?: 'zero'; payload?: Buffer; ipv4?: object; hops?: number } = {}): Buffer {
  const b = pkt().eth(macs);
  const ttl = 64 - (opts.hops ?? 0);
  if (family === 4) b.ipv4({ src: s.src, dst: s.dst, id: 7, ttl, ...opts.ipv4 });
  else b.ipv6({ src: s.src, dst: s.dst, hopLimit: ttl });
  if (l4 === 'tcp') b.tcp({ sport: s.sport, dport: s.dport, flags: opts.flags ?? 'S', seq: 1000, ack: opts.flags?.includes('A') ? 5000 : 0 });
  else b.udp({ sport: s.sport, dport: s.dport, ...(opts.udpChecksum ? { checksum: opts.udpChecksum } : {}) });
  return b.payload(opts.payload ?? PAYLOAD).build();
}

const fromClient = { src: MAC.client, dst: MAC.fx0 };
const toClient = { src: MAC.fx0, dst: MAC.client };

function vipOf(family: 4 | 6): string {
  return family === 4 ? ADDR.vip4 : ADDR.vip6;
}
function clientOf(family: 4 | 6): string {
  return family === 4 ? ADDR.client4 : ADDR.client6;
}
function snatOf(family: 4 | 6): string {
  return family === 4 ? ADDR.snat4 : ADDR.snat6;
}

/** Client → VIP. */
function clientPacket(family: 4 | 6, l4: L4, sport: number, opts: Parameters<typeof frame>[4] = {}, vip = vipOf(family), vport = l4 === 'tcp' ? 80 : 53): Buffer {
  return frame(family, fromClient, { src: clientOf(family), dst: vip, sport, dport: vport }, l4, opts);
}

function flowOf(family: 4 | 6, l4: L4, sport: number, vip = vipOf(family), vport = l4 === 'tcp' ? 80 : 53) {
  return { src: clientOf(family), dst: vip, sport, dport: vport, proto: l4 === 'tcp' ? TCP : UDP };
}

/** What the LB must send to the backend for a client packet (SNAT + DNAT, MACs from the FIB). */
function toBackend(env: FixtureEnv, family: 4 | 6, l4: L4, sport: number, opts: Parameters<typeof frame>[4] = {}, vip = vipOf(family), vport = l4 === 'tcp' ? 80 : 53): Buffer {
  const p = env.predict(flowOf(family, l4, sport, vip, vport), l4 === 'tcp' ? 'TCP' : 'UDP');
  return frame(family, { src: MAC.fb0, dst: MAC.backend(p.backendIndex) }, { src: snatOf(family), dst: p.backend, sport: p.snatPort, dport: p.backendPort }, l4, { hops: 1, ...opts });
}

/** Backend → node:snat-port, for the flow of `sport`. */
function fromBackend(env: FixtureEnv, family: 4 | 6, l4: L4, sport: number, opts: Parameters<typeof frame>[4] = {}): Buffer {
  const p = env.predict(flowOf(family, l4, sport), l4 === 'tcp' ? 'TCP' : 'UDP');
  return frame(family, { src: MAC.backend(p.backendIndex), dst: MAC.fb0 }, { src: p.backend, dst: snatOf(family), sport: p.backendPort, dport: p.snatPort }, l4, opts);
}

/** VIP → client, what a reply must become. */
function replyToClient(family: 4 | 6, l4: L4, sport: number, opts: Parameters<typeof frame>[4] = {}): Buffer {
  return frame(family, toClient, { src: vipOf(family), dst: clientOf(family), sport: l4 === 'tcp' ? 80 : 53, dport: sport }, l4, { hops: 1, ...opts });
}

function arpRequest(opts: { spa?: string; tpa?: string; op?: 'request' | 'reply'; pad?: number } = {}): Buffer {
  const b = pkt().eth({ src: MAC.client, dst: 'ff:ff:ff:ff:ff:ff' })
    .arp({ op: opts.op ?? 'request', sha: MAC.client, spa: opts.spa ?? ADDR.client4, tpa: opts.tpa ?? ADDR.vip4 });
  if (opts.pad) b.payload(Buffer.alloc(opts.pad));
  return b.build();
}

function arpReply(tpa = ADDR.client4, pad = 0): Buffer {
  const b = pkt().eth({ src: MAC.vip, dst: MAC.client }).arp({ op: 'reply', sha: MAC.vip, spa: ADDR.vip4, tha: MAC.client, tpa });
  if (pad) b.payload(Buffer.alloc(pad));
  return b.build();
}

const SOLICITED_NODE = 'ff02::1:ff00:10';
const SOLICITED_MAC = '33:33:ff:00:00:10';

function neighSolicit(opts: { src?: string; target?: string; sll?: boolean; hopLimit?: number } = {}): Buffer {
  return pkt().eth({ src: MAC.client, dst: SOLICITED_MAC })
    .ipv6({ src: opts.src ?? ADDR.client6, dst: SOLICITED_NODE, ...(opts.hopLimit ? { hopLimit: opts.hopLimit } : {}) })
    .ns({ target: opts.target ?? ADDR.vip6, ...(opts.sll === false ? {} : { sll: MAC.client }) })
    .build();
}

function neighAdvert(from = MAC.vip): Buffer {
  return pkt().eth({ src: from, dst: MAC.client })
    .ipv6({ src: ADDR.vip6, dst: ADDR.client6 })
    .na({ target: ADDR.vip6, tll: from, solicited: true, override: true })
    .build();
}

/** Foreign answers noted for `address` on fx0 (bpf/lib/l2_foreign.h): count and last MAC. */
function foreignAnswers(env: FixtureEnv, address: string): { count: number; mac?: string } {
  const v = env.dp.maps.l2Foreign.lookup(encodeResponderKey({ address, ifindex: env.ifindex.fx0 }));
  if (!v) return { count: 0 };
  const d = decodeL2Foreign(v);
  return { count: Number(d.count), mac: d.mac };
}

/** A row's check that `address` got `more` foreign answers (from `mac`) while the row ran. */
function notesForeign(address: string, more: number, mac = MAC.client): Pick<Row, 'setup' | 'check'> {
  let before = 0;
  return {
    setup: (env) => { before = foreignAnswers(env, address).count; },
    check: (t, _out, env) => {
      const now = foreignAnswers(env, address);
      t.equal(now.count - before, more, `${more} foreign answer(s) noted for ${address}`);
      if (more) t.equal(now.mac, mac, 'with the sender\'s MAC');
    },
  };
}

/** Frontend 198.51.100.18:80 with a changed backend list (port 7100). */
function withFe18(_env: FixtureEnv, backends: Frontend['backends'] | null): Frontend[] {
  return baseFrontends().map((f) => (f.address === '198.51.100.18' ? (backends ? { ...f, backends } : null) : f)).filter((f): f is Frontend => f !== null);
}

const fe18Backends = (states: Record<number, 'active' | 'terminating'> = {}, only = [1, 2, 3]) =>
  only.map((i) => ({ address: ADDR.backend4(i), port: 7100, weight: 1, state: states[i] ?? ('active' as const) }));

/** A client port whose flow on frontend 18 is in a slot that another backend owns in the table of `members`. */
function portThatMoves(env: FixtureEnv, members: MaglevMember[], from: number): number {
  const table = buildMaglevTable(members, maglevTableSize(members.length, { max: DEFAULT_MAGLEV_MAX_M }).m);
  for (let sport = from; sport < from + 2000; sport++) {
    const flow = flowOf(4, 'tcp', sport, '198.51.100.18');
    const now = env.predict(flow, 'TCP').backend;
    const next = members[table[flowHash(encodeFlow(flow), env.dp.config.hashSeed) % table.length]!]!.key.split('|')[0];
    if (next !== now) return sport;
  }
  throw new Error('no moving port found');
}

/** One's-complement residue of an IPv4/TCP frame's checksum (0 when valid); NAT must carry it over unchanged. */
function tcpChecksumError4(f: Buffer): number {
  const ip = f.subarray(14, 14 + 20);
  const seg = f.subarray(14 + 20, 14 + ip.readUInt16BE(2));
  const pseudo = Buffer.alloc(12);
  ip.copy(pseudo, 0, 12, 20);
  pseudo[9] = TCP;
  pseudo.writeUInt16BE(seg.length, 10);
  return inetChecksum(pseudo, seg);
}

// ------------------------------------------------------------------ rows

const rows: Row[] = [];
const add = (r: Row): void => { rows.push(r); };

for (const family of [4, 6] as const) {
  const v = `v${family}`;
  const base = family === 4 ? 10000 : 11000;
  // TCP: a whole connection.
  add({ name: `${v} TCP SYN to the VIP: Maglev pick, SNAT + DNAT, MACs from the FIB, redirect to the backend`,
    input: () => clientPacket(family, 'tcp', base + 1), verdict: 'REDIRECT',
    output: (env) => toBackend(env, family, 'tcp', base + 1), stats: { ct_create: 1, fwd_redirect: 1 } });
  add({ name: `${v} TCP ACK of the same flow: conntrack hit, same backend and SNAT port`,
    input: () => clientPacket(family, 'tcp', base + 1, { flags: 'A' }), verdict: 'REDIRECT',
    output: (env) => toBackend(env, family, 'tcp', base + 1, { flags: 'A' }), stats: { ct_hit: 1, fwd_redirect: 1 } });
  add({ name: `${v} TCP data: payload untouched, checksums valid`,
    input: () => clientPacket(family, 'tcp', base + 1, { flags: 'PA', payload: Buffer.alloc(301, 0xa5) }), verdict: 'REDIRECT',
    output: (env) => toBackend(env, family, 'tcp', base + 1, { flags: 'PA', payload: Buffer.alloc(301, 0xa5) }),
    check: (t, out) => { const p = parse(out); t.ok(p.tcp?.checksumOk, 'TCP checksum valid'); if (family === 4) t.ok(p.ip?.checksumOk, 'IPv4 checksum valid'); },
    stats: { ct_hit: 1, fwd_redirect: 1 } });
  add({ name: `${v} TCP reply from the backend to the SNAT port: reverse NAT to VIP → client`, ingress: 'fb0',
    input: (env) => fromBackend(env, family, 'tcp', base + 1, { flags: 'SA' }), verdict: 'REDIRECT',
    output: () => replyToClient(family, 'tcp', base + 1, { flags: 'SA' }), stats: { rev_nat: 1, fwd_redirect: 1 } });
  add({ name: `${v} TCP FIN from the client: forwarded on the flow (state closing)`,
    input: () => clientPacket(family, 'tcp', base + 1, { flags: 'FA' }), verdict: 'REDIRECT',
    output: (env) => toBackend(env, family, 'tcp', base + 1, { flags: 'FA' }), stats: { ct_hit: 1, fwd_redirect: 1 } });
  add({ name: `${v} TCP bare SYN reusing a closing 5-tuple opens a new flow`,
    input: () => clientPacket(family, 'tcp', base + 1), verdict: 'REDIRECT',
    output: (env) => toBackend(env, family, 'tcp', base + 1), stats: { ct_create: 1, fwd_redirect: 1 } });
  add({ name: `${v} TCP RST from the backend: reverse NAT, flow marked closing`, ingress: 'fb0',
    input: (env) => fromBackend(env, family, 'tcp', base + 1, { flags: 'RA' }), verdict: 'REDIRECT',
    output: () => replyToClient(family, 'tcp', base + 1, { flags: 'RA' }), stats: { rev_nat: 1, fwd_redirect: 1 } });
  for (let i = 2; i <= 5; i++) {
    add({ name: `${v} TCP flow ${i}: backend and SNAT port as predicted by flowHash + the table`,
      input: () => clientPacket(family, 'tcp', base + 100 + i * 7), verdict: 'REDIRECT',
      output: (env) => toBackend(env, family, 'tcp', base + 100 + i * 7), stats: { ct_create: 1, fwd_redirect: 1 } });
  }
  // UDP.
  add({ name: `${v} UDP to the VIP: SNAT + DNAT to backend:5353, checksum valid`,
    input: () => clientPacket(family, 'udp', base + 2), verdict: 'REDIRECT',
    output: (env) => toBackend(env, family, 'udp', base + 2),
    check: (t, out) => t.ok(parse(out).udp?.checksumOk, 'UDP checksum valid'), stats: { ct_create: 1, fwd_redirect: 1 } });
  add({ name: `${v} UDP second datagram: conntrack hit`,
    input: () => clientPacket(family, 'udp', base + 2), verdict: 'REDIRECT',
    output: (env) => toBackend(env, family, 'udp', base + 2), stats: { ct_hit: 1, fwd_redirect: 1 } });
  add({ name: `${v} UDP reply: reverse NAT`, ingress: 'fb0',
    input: (env) => fromBackend(env, family, 'udp', base + 2), verdict: 'REDIRECT',
    output: () => replyToClient(family, 'udp', base + 2), stats: { rev_nat: 1, fwd_redirect: 1 } });
  add({ name: `${v} reply to an unused SNAT port: untouched PASS`, ingress: 'fb0',
    input: () => frame(family, { src: MAC.backend(1), dst: MAC.fb0 }, { src: family === 4 ? ADDR.backend4(1) : ADDR.backend6(1), dst: snatOf(family), sport: 9999, dport: PORT_MIN + 3 }, 'udp'),
    verdict: 'PASS', stats: {} });
  add({ name: `${v} packet to the node address outside the SNAT range: untouched PASS`, ingress: 'fb0',
    input: () => frame(family, { src: MAC.backend(1), dst: MAC.fb0 }, { src: family === 4 ? ADDR.backend4(1) : ADDR.backend6(1), dst: snatOf(family), sport: 40000, dport: 22 }, 'tcp'),
    verdict: 'PASS', stats: {} });
  add({ name: `${v} TCP to the VIP on a port without a frontend: untouched PASS`,
    input: () => clientPacket(family, 'tcp', base + 3, {}, vipOf(family), 8443), verdict: 'PASS', stats: {} });
  add({ name: `${v} UDP to a foreign address: untouched PASS`,
    input: () => clientPacket(family, 'udp', base + 3, {}, family === 4 ? '198.51.100.200' : '2001:db8:100::200'), verdict: 'PASS', stats: {} });
  add({ name: `${v} frontend without backends: drop no_backend`,
    input: () => clientPacket(family, 'tcp', base + 4, {}, family === 4 ? '198.51.100.11' : '2001:db8:100::11'), verdict: 'DROP', stats: { no_backend: 1 } });
  add({ name: `${v} backend without a neighbour entry: NATed packet handed to the kernel (PASS), MACs untouched`,
    input: () => clientPacket(family, 'tcp', base + 5, {}, family === 4 ? '198.51.100.13' : '2001:db8:100::13'), verdict: 'PASS',
    output: (env) => {
      const p = env.predict(flowOf(family, 'tcp', base + 5, family === 4 ? '198.51.100.13' : '2001:db8:100::13'), 'TCP');
      return frame(family, fromClient, { src: snatOf(family), dst: p.backend, sport: p.snatPort, dport: 8080 }, 'tcp');
    },
    stats: { ct_create: 1, no_neigh: 1 } });
}

// UDP zero checksum (IPv4 only: IPv6 has no "no checksum").
add({ name: 'v4 UDP with zero checksum: stays zero after NAT',
  input: () => clientPacket(4, 'udp', 10050, { udpChecksum: 'zero' }), verdict: 'REDIRECT',
  output: (env) => toBackend(env, 4, 'udp', 10050, { udpChecksum: 'zero' }),
  check: (t, out) => t.equal(parse(out).udp?.checksum, 0), stats: { ct_create: 1, fwd_redirect: 1 } });

// IPv6 extension headers the parser walks.
add({ name: 'v6 TCP behind hop-by-hop + destination-options headers: balanced, headers kept',
  input: () => pkt().eth(fromClient).ipv6({ src: ADDR.client6, dst: ADDR.vip6 }).ext('hop', { options: Buffer.from([1, 2, 0, 0]) }).ext('dest')
    .tcp({ sport: 11060, dport: 80, flags: 'S', seq: 1000 }).payload(PAYLOAD).build(),
  verdict: 'REDIRECT',
  output: (env) => {
    const p = env.predict(flowOf(6, 'tcp', 11060), 'TCP');
    return pkt().eth({ src: MAC.fb0, dst: MAC.backend(p.backendIndex) }).ipv6({ src: ADDR.snat6, dst: p.backend, hopLimit: 63 }).ext('hop', { options: Buffer.from([1, 2, 0, 0]) }).ext('dest')
      .tcp({ sport: p.snatPort, dport: 8080, flags: 'S', seq: 1000 }).payload(PAYLOAD).build();
  },
  stats: { ct_create: 1, fwd_redirect: 1 } });
add({ name: 'v6 atomic fragment (offset 0, no M): walked and balanced',
  input: () => pkt().eth(fromClient).ipv6({ src: ADDR.client6, dst: ADDR.vip6 }).ext('frag', { id: 9 }).udp({ sport: 11061, dport: 53 }).payload(PAYLOAD).build(),
  verdict: 'REDIRECT',
  output: (env) => {
    const p = env.predict(flowOf(6, 'udp', 11061), 'UDP');
    return pkt().eth({ src: MAC.fb0, dst: MAC.backend(p.backendIndex) }).ipv6({ src: ADDR.snat6, dst: p.backend, hopLimit: 63 }).ext('frag', { id: 9 }).udp({ sport: p.snatPort, dport: 5353 }).payload(PAYLOAD).build();
  },
  stats: { ct_create: 1, fwd_redirect: 1 } });

// TTL: pharos is a hop.
add({ name: 'v4 TTL 2: forwarded with TTL 1 (header checksum adjusted)',
  input: () => clientPacket(4, 'tcp', 10080, { hops: 62 }), verdict: 'REDIRECT',
  output: (env) => toBackend(env, 4, 'tcp', 10080, { hops: 63 }),
  check: (t, out) => t.ok(parse(out).ip?.checksumOk, 'IPv4 header checksum valid'), stats: { ct_create: 1, fwd_redirect: 1 } });
add({ name: 'v4 TTL 1 to a VIP: untouched PASS (the kernel sends time exceeded)',
  input: () => clientPacket(4, 'tcp', 10081, { hops: 63 }), verdict: 'PASS', output: () => clientPacket(4, 'tcp', 10081, { hops: 63 }), stats: { ttl_exceeded: 1 } });
add({ name: 'v6 hop limit 1 to a VIP: untouched PASS',
  input: () => clientPacket(6, 'udp', 10082, { hops: 63 }), verdict: 'PASS', output: () => clientPacket(6, 'udp', 10082, { hops: 63 }), stats: { ttl_exceeded: 1 } });
add({ name: 'v4 reply with TTL 1 from a backend: untouched PASS',
  ingress: 'fb0', setup: (env) => env.run(clientPacket(4, 'udp', 10083)),
  input: (env) => fromBackend(env, 4, 'udp', 10083, { hops: 63 }), verdict: 'PASS', stats: { ttl_exceeded: 1 } });

// Destination MAC: with the ingress interface's MAC recorded (as attach does), a frame for another host starts no flow.
const recordMac = (env: FixtureEnv): void => { env.dp.maps.ifMacs.update(u32Key(env.ifindex.fx0), encodeIfMac(MAC.fx0)); };
const forgetMac = (env: FixtureEnv): void => { env.dp.maps.ifMacs.delete(u32Key(env.ifindex.fx0)); };
const OTHER_HOST = '02:00:00:00:99:99';
add({ name: 'v4 first packet to another host\'s MAC: untouched PASS, no flow (foreign_mac)', setup: recordMac, after: forgetMac,
  input: () => frame(4, { src: MAC.client, dst: OTHER_HOST }, { src: ADDR.client4, dst: ADDR.vip4, sport: 10085, dport: 80 }, 'tcp'), verdict: 'PASS', stats: { foreign_mac: 1 } });
add({ name: 'v6 first packet to another host\'s MAC: untouched PASS, no flow (foreign_mac)', setup: recordMac, after: forgetMac,
  input: () => frame(6, { src: MAC.client, dst: OTHER_HOST }, { src: ADDR.client6, dst: ADDR.vip6, sport: 10085, dport: 53 }, 'udp'), verdict: 'PASS', stats: { foreign_mac: 1 } });
add({ name: 'v4 first packet to our MAC with the MAC recorded: balanced as usual', setup: recordMac, after: forgetMac,
  input: () => clientPacket(4, 'tcp', 10086), verdict: 'REDIRECT', output: (env) => toBackend(env, 4, 'tcp', 10086), stats: { ct_create: 1, fwd_redirect: 1 } });
add({ name: 'v4 first packet to a multicast MAC: not judged by MAC', setup: recordMac, after: forgetMac,
  input: () => frame(4, { src: MAC.client, dst: '01:00:5e:00:00:01' }, { src: ADDR.client4, dst: ADDR.vip4, sport: 10087, dport: 80 }, 'tcp'), verdict: 'REDIRECT',
  output: (env) => toBackend(env, 4, 'tcp', 10087), stats: { ct_create: 1, fwd_redirect: 1 } });

// A backend the FIB does not forward to and that is not a node address: no route at all, not "local".
const UNROUTED_VIP = '198.51.100.19';
const unrouted = (env: FixtureEnv): void => env.apply([...baseFrontends(), {
  service: 'fx/unrouted', kind: 'LoadBalancer', address: UNROUTED_VIP, port: 80, protocol: 'TCP',
  backends: [{ address: '192.0.2.50', port: 8080, weight: 1, state: 'active' }],
  sessionAffinity: false, sessionAffinityTimeoutSeconds: 0, localOnly: false, sourceRanges: [],
}]);
add({ name: 'v4 backend with no route (FIB "not forwarded", not a node address): drop fib_fail, no flow', setup: unrouted, after: (env) => env.apply(baseFrontends()),
  input: () => clientPacket(4, 'tcp', 10088, {}, UNROUTED_VIP), verdict: 'DROP', stats: { fib_fail: 1 } });

// Forwarding variants.
add({ name: 'v4 backend reached through the ingress interface: XDP_TX',
  input: () => clientPacket(4, 'tcp', 10070, {}, '198.51.100.17'), verdict: 'TX',
  output: (env) => frame(4, { src: MAC.fx0, dst: MAC.far }, { src: ADDR.snat4, dst: ADDR.far4, sport: env.predict(flowOf(4, 'tcp', 10070, '198.51.100.17'), 'TCP').snatPort, dport: 8080 }, 'tcp', { hops: 1 }),
  stats: { ct_create: 1, fwd_tx: 1 } });
add({ name: 'v4 backend on this node: DNAT only (client address kept), PASS to the local stack',
  input: () => clientPacket(4, 'tcp', 10071, {}, '198.51.100.12'), verdict: 'PASS',
  output: () => frame(4, fromClient, { src: ADDR.client4, dst: ADDR.local4, sport: 10071, dport: 8080 }, 'tcp'),
  stats: { ct_create: 1, local_backend: 1 } });
add({ name: 'v4 backend on this node, next packet: conntrack hit, DNAT, PASS',
  input: () => clientPacket(4, 'tcp', 10071, { flags: 'A' }, '198.51.100.12'), verdict: 'PASS',
  output: () => frame(4, fromClient, { src: ADDR.client4, dst: ADDR.local4, sport: 10071, dport: 8080 }, 'tcp', { flags: 'A' }),
  stats: { ct_hit: 1, local_backend: 1 } });
add({ name: 'v4 backend behind an unreachable route: drop fib_fail',
  input: () => clientPacket(4, 'tcp', 10072, {}, '198.51.100.14'), verdict: 'DROP', stats: { fib_fail: 1 } });

// Things that are not ours.
add({ name: 'ICMP echo to the VIP: answered in place (XDP_TX), TTL 64, checksums valid',
  input: () => pkt().eth(fromClient).ipv4({ src: ADDR.client4, dst: ADDR.vip4, ttl: 61 }).icmp({ type: 8, id: 1, seq: 1 }).payload(PAYLOAD).build(), verdict: 'TX',
  output: () => pkt().eth(toClient).ipv4({ src: ADDR.vip4, dst: ADDR.client4, ttl: 64 }).icmp({ type: 0, id: 1, seq: 1 }).payload(PAYLOAD).build(),
  check: (t, out) => { const p = parse(out); t.ok(p.ip?.checksumOk, 'IPv4 checksum valid'); t.ok(p.icmp?.checksumOk, 'ICMP checksum valid'); },
  stats: { icmp_echo_reply: 1 } });
add({ name: 'ICMPv6 echo to the VIP: answered in place (XDP_TX), hop limit 64, checksum valid',
  input: () => pkt().eth(fromClient).ipv6({ src: ADDR.client6, dst: ADDR.vip6, hopLimit: 60 }).icmp6({ type: 128, id: 1, seq: 1 }).payload(PAYLOAD).build(), verdict: 'TX',
  output: () => pkt().eth(toClient).ipv6({ src: ADDR.vip6, dst: ADDR.client6, hopLimit: 64 }).icmp6({ type: 129, id: 1, seq: 1 }).payload(PAYLOAD).build(),
  check: (t, out) => t.ok(parse(out).icmp6?.checksumOk, 'ICMPv6 checksum valid'),
  stats: { icmp_echo_reply: 1 } });
add({ name: 'ICMP echo to a foreign address: untouched PASS',
  input: () => pkt().eth(fromClient).ipv4({ src: ADDR.client4, dst: '198.51.100.200' }).icmp({ type: 8, id: 1, seq: 1 }).payload(PAYLOAD).build(), verdict: 'PASS', stats: {} });
add({ name: 'ICMPv6 echo to a foreign address: untouched PASS',
  input: () => pkt().eth(fromClient).ipv6({ src: ADDR.client6, dst: '2001:db8:100::200' }).icmp6({ type: 128, id: 1, seq: 1 }).payload(PAYLOAD).build(), verdict: 'PASS', stats: {} });
add({ name: 'ICMP echo reply to the VIP: untouched PASS',
  input: () => pkt().eth(fromClient).ipv4({ src: ADDR.client4, dst: ADDR.vip4 }).icmp({ type: 0, id: 1, seq: 1 }).payload(PAYLOAD).build(), verdict: 'PASS', stats: {} });
add({ name: 'ICMP echo cut inside its header: untouched PASS',
  input: () => truncate(pkt().eth(fromClient).ipv4({ src: ADDR.client4, dst: ADDR.vip4, totalLength: 24 }).icmp({ type: 8, id: 1, seq: 1 }).build(), 14 + 24), verdict: 'PASS', stats: {} });
add({ name: 'GRE to the VIP: untouched PASS',
  input: () => pkt().eth(fromClient).ipv4({ src: ADDR.client4, dst: ADDR.vip4, proto: IPPROTO.GRE }).payload(Buffer.alloc(24)).build(), verdict: 'PASS', stats: {} });
add({ name: 'LLDP frame: untouched PASS',
  input: () => pkt().eth({ src: MAC.client, dst: '01:80:c2:00:00:0e', type: 0x88cc }).payload(Buffer.alloc(46)).build(), verdict: 'PASS', stats: {} });
add({ name: 'VLAN-tagged TCP to the VIP: untouched PASS (the VLAN device owns it)',
  input: () => pkt().eth(fromClient).vlan({ vid: 10 }).ipv4({ src: ADDR.client4, dst: ADDR.vip4 }).tcp({ sport: 10080, dport: 80 }).build(), verdict: 'PASS', stats: {} });

// ARP responder.
add({ name: 'ARP request for the VIP, agent alive: reply built in place, XDP_TX',
  input: () => arpRequest(), verdict: 'TX', output: () => arpReply(), stats: { arp_reply: 1 } });
add({ name: 'ARP request padded to 60 bytes: answered, length kept',
  input: () => arpRequest({ pad: 18 }), verdict: 'TX', output: () => arpReply(ADDR.client4, 18), stats: { arp_reply: 1 } });
add({ name: 'ARP probe (sender 0.0.0.0) for the VIP: answered (defends the address)',
  input: () => arpRequest({ spa: '0.0.0.0' }), verdict: 'TX', output: () => arpReply('0.0.0.0'), stats: { arp_reply: 1 } });
add({ name: 'ARP request for a foreign address: untouched PASS',
  input: () => arpRequest({ tpa: '198.18.0.99' }), verdict: 'PASS', stats: {} });
add({ name: 'gratuitous ARP for the VIP from another host: PASS, counted, noted as a foreign answer',
  ...notesForeign(ADDR.vip4, 1), input: () => arpRequest({ spa: ADDR.vip4, tpa: ADDR.vip4 }), verdict: 'PASS', output: () => arpRequest({ spa: ADDR.vip4, tpa: ADDR.vip4 }), stats: { arp_ignored: 1 } });
add({ name: 'ARP reply about the client asking for the VIP: untouched PASS, nothing noted',
  ...notesForeign(ADDR.vip4, 0), input: () => arpRequest({ op: 'reply' }), verdict: 'PASS', output: () => arpRequest({ op: 'reply' }), stats: {} });
add({ name: 'ARP reply for the VIP from another MAC: untouched PASS, noted as a foreign answer',
  ...notesForeign(ADDR.vip4, 1), input: () => arpRequest({ op: 'reply', spa: ADDR.vip4, tpa: ADDR.client4 }), verdict: 'PASS',
  output: () => arpRequest({ op: 'reply', spa: ADDR.vip4, tpa: ADDR.client4 }), stats: {} });
add({ name: 'ARP reply for the VIP with our own MAC: untouched PASS, nothing noted',
  ...notesForeign(ADDR.vip4, 0), input: () => arpReply(), verdict: 'PASS', output: () => arpReply(), stats: {} });
add({ name: 'gratuitous ARP for an address we do not answer for: PASS, nothing noted',
  ...notesForeign('198.18.0.99', 0), input: () => arpRequest({ spa: '198.18.0.99', tpa: '198.18.0.99' }), verdict: 'PASS', output: () => arpRequest({ spa: '198.18.0.99', tpa: '198.18.0.99' }), stats: {} });
add({ name: 'ARP request for the VIP on an interface it is not announced on: PASS', ingress: 'fb0',
  input: () => arpRequest(), verdict: 'PASS', stats: {} });
add({ name: 'ARP request while the agent liveness stamp is stale: PASS, counted',
  setup: (env) => env.sync.touchLiveness(1n), after: (env) => env.sync.touchLiveness(),
  input: () => arpRequest(), verdict: 'PASS', stats: { responder_stale: 1 } });
add({ name: 'ARP truncated after the opcode: drop malformed_l2',
  input: () => truncate(arpRequest(), 14 + 10), verdict: 'DROP', stats: { malformed_l2: 1 } });
add({ name: 'ARP for a non-Ethernet hardware type: PASS',
  input: () => { const f = arpRequest(); f.writeUInt16BE(6, 14); return f; }, verdict: 'PASS', stats: {} });

// NDP responder.
add({ name: 'NS for the IPv6 VIP with a source link-layer option: NA with our MAC, XDP_TX',
  input: () => neighSolicit(), verdict: 'TX', output: () => neighAdvert(),
  check: (t, out) => { const p = parse(out); t.ok(p.icmp6?.checksumOk, 'ICMPv6 checksum valid'); t.match(p.ndp, { kind: 'na', solicited: true, override: true, router: false, tll: MAC.vip }); },
  stats: { na_reply: 1 } });
add({ name: 'NS without options (78 bytes): NA grown to 86 bytes',
  input: () => neighSolicit({ sll: false }), verdict: 'TX', output: () => neighAdvert(), stats: { na_reply: 1 } });
add({ name: 'NS while the agent liveness stamp is stale: PASS, counted',
  setup: (env) => env.sync.touchLiveness(1n), after: (env) => env.sync.touchLiveness(),
  input: () => neighSolicit(), verdict: 'PASS', stats: { responder_stale: 1 } });
add({ name: 'DAD NS (source ::) for the VIP: PASS to the kernel',
  input: () => neighSolicit({ src: '::', sll: false }), verdict: 'PASS', stats: {} });
add({ name: 'NS with hop limit 64 (not from a neighbour): PASS',
  input: () => neighSolicit({ hopLimit: 64 }), verdict: 'PASS', stats: {} });
add({ name: 'NS for a foreign target: PASS',
  input: () => neighSolicit({ target: '2001:db8::99' }), verdict: 'PASS', stats: {} });
add({ name: 'NA about the VIP with our own MAC: PASS, nothing noted',
  ...notesForeign(ADDR.vip6, 0), input: () => neighAdvert(), verdict: 'PASS', output: () => neighAdvert(), stats: {} });
add({ name: 'NA about the VIP from another MAC: PASS, noted as a foreign answer',
  ...notesForeign(ADDR.vip6, 1), input: () => neighAdvert(MAC.client), verdict: 'PASS', output: () => neighAdvert(MAC.client), stats: {} });

// Hostile input.
const goodTcp4 = (): Buffer => clientPacket(4, 'tcp', 10090);
const goodTcp6 = (): Buffer => clientPacket(6, 'tcp', 11090);
add({ name: 'Ethernet header only, IPv4 type: drop malformed_l3',
  input: () => truncate(goodTcp4(), 14), verdict: 'DROP', stats: { malformed_l3: 1 } });
add({ name: 'IPv4 header truncated at 12 bytes: drop malformed_l3',
  input: () => truncate(goodTcp4(), 14 + 12), verdict: 'DROP', stats: { malformed_l3: 1 } });
add({ name: 'IPv4 IHL 4: drop malformed_l3',
  input: () => pkt().eth(fromClient).ipv4({ src: ADDR.client4, dst: ADDR.vip4, ihl: 4 }).tcp({ sport: 10091, dport: 80 }).build(), verdict: 'DROP', stats: { malformed_l3: 1 } });
add({ name: 'IPv4 IHL 15 beyond the frame: drop malformed_l3',
  input: () => pkt().eth(fromClient).ipv4({ src: ADDR.client4, dst: ADDR.vip4, ihl: 15, totalLength: 60, proto: TCP }).payload(Buffer.alloc(20)).build(), verdict: 'DROP', stats: { malformed_l3: 1 } });
add({ name: 'IPv4 total length beyond the frame: drop malformed_l3',
  input: () => pkt().eth(fromClient).ipv4({ src: ADDR.client4, dst: ADDR.vip4, totalLength: 1500 }).tcp({ sport: 10092, dport: 80 }).build(), verdict: 'DROP', stats: { malformed_l3: 1 } });
add({ name: 'IPv4 total length below the header length: drop malformed_l3',
  input: () => pkt().eth(fromClient).ipv4({ src: ADDR.client4, dst: ADDR.vip4, totalLength: 12 }).tcp({ sport: 10093, dport: 80 }).build(), verdict: 'DROP', stats: { malformed_l3: 1 } });
add({ name: 'IPv4 EtherType carrying a version-6 header: drop malformed_l3',
  input: () => { const f = goodTcp4(); f[14] = 0x65; return f; }, verdict: 'DROP', stats: { malformed_l3: 1 } });
add({ name: 'IPv4 with options to the VIP: balanced, options kept, checksums valid',
  input: () => clientPacket(4, 'tcp', 10094, { ipv4: { options: Buffer.from([0x94, 0x04, 0, 0]) } }), verdict: 'REDIRECT',
  output: (env) => toBackend(env, 4, 'tcp', 10094, { ipv4: { options: Buffer.from([0x94, 0x04, 0, 0]) } }),
  check: (t, out) => { const p = parse(out); t.ok(p.ip?.checksumOk); t.ok(p.tcp?.checksumOk); t.equal(p.ip?.ihl, 6); },
  stats: { ct_create: 1, fwd_redirect: 1 } });
add({ name: 'IPv4 first fragment (MF) to the VIP: PASS, counted fragment',
  input: () => clientPacket(4, 'udp', 10095, { ipv4: { flags: 'MF' } }), verdict: 'PASS', stats: { fragment: 1 } });
add({ name: 'IPv4 non-first fragment to the VIP: PASS, counted fragment',
  input: () => pkt().eth(fromClient).ipv4({ src: ADDR.client4, dst: ADDR.vip4, fragOffset: 100, proto: UDP }).payload(Buffer.alloc(40)).build(), verdict: 'PASS', stats: { fragment: 1 } });
add({ name: 'TCP header truncated inside the datagram: drop malformed_l4',
  input: () => pkt().eth(fromClient).ipv4({ src: ADDR.client4, dst: ADDR.vip4, proto: TCP }).payload(Buffer.alloc(10)).build(), verdict: 'DROP', stats: { malformed_l4: 1 } });
add({ name: 'TCP data offset 4: drop malformed_l4',
  input: () => pkt().eth(fromClient).ipv4({ src: ADDR.client4, dst: ADDR.vip4 }).tcp({ sport: 10096, dport: 80, dataOffset: 4 }).build(), verdict: 'DROP', stats: { malformed_l4: 1 } });
add({ name: 'UDP length 0: drop malformed_l4',
  input: () => pkt().eth(fromClient).ipv4({ src: ADDR.client4, dst: ADDR.vip4 }).udp({ sport: 10097, dport: 53, length: 0 }).payload(PAYLOAD).build(), verdict: 'DROP', stats: { malformed_l4: 1 } });
add({ name: 'UDP length beyond the datagram: drop malformed_l4',
  input: () => pkt().eth(fromClient).ipv4({ src: ADDR.client4, dst: ADDR.vip4 }).udp({ sport: 10098, dport: 53, length: 900 }).payload(PAYLOAD).build(), verdict: 'DROP', stats: { malformed_l4: 1 } });
add({ name: 'UDP header cut by the IP total length: drop malformed_l4',
  input: () => { const f = clientPacket(4, 'udp', 10099); f.writeUInt16BE(20 + 4, 16); return f; }, verdict: 'DROP', stats: { malformed_l4: 1 } });
add({ name: 'IPv6 header truncated: drop malformed_l3',
  input: () => truncate(goodTcp6(), 14 + 30), verdict: 'DROP', stats: { malformed_l3: 1 } });
add({ name: 'IPv6 payload length beyond the frame: drop malformed_l3',
  input: () => pkt().eth(fromClient).ipv6({ src: ADDR.client6, dst: ADDR.vip6, payloadLength: 1400 }).tcp({ sport: 11091, dport: 80 }).build(), verdict: 'DROP', stats: { malformed_l3: 1 } });
add({ name: 'IPv6 chain of 5 extension headers: PASS, counted ipv6_ext_limit',
  input: () => pkt().eth(fromClient).ipv6({ src: ADDR.client6, dst: ADDR.vip6 }).ext('hop').ext('dest').ext('dest').ext('dest').ext('dest').tcp({ sport: 11092, dport: 80 }).build(),
  verdict: 'PASS', stats: { ipv6_ext_limit: 1 } });
add({ name: 'IPv6 non-first fragment to the VIP: PASS, counted fragment',
  input: () => pkt().eth(fromClient).ipv6({ src: ADDR.client6, dst: ADDR.vip6 }).ext('frag', { offset: 10, nextHeader: UDP }).payload(Buffer.alloc(32)).build(), verdict: 'PASS', stats: { fragment: 1 } });
add({ name: 'IPv6 first fragment (M set) to the VIP: PASS, counted fragment',
  input: () => pkt().eth(fromClient).ipv6({ src: ADDR.client6, dst: ADDR.vip6 }).ext('frag', { more: true }).udp({ sport: 11093, dport: 53 }).payload(PAYLOAD).build(), verdict: 'PASS', stats: { fragment: 1 } });
add({ name: 'IPv6 routing header with segments left (VIP not the final destination): untouched PASS',
  input: () => pkt().eth(fromClient).ipv6({ src: ADDR.client6, dst: ADDR.vip6 }).ext('routing', { addresses: ['2001:db8:100::99'] }).tcp({ sport: 11094, dport: 80 }).build(), verdict: 'PASS', stats: {} });
add({ name: 'IPv6 extension header running past the frame: drop malformed_l3',
  input: () => { const f = pkt().eth(fromClient).ipv6({ src: ADDR.client6, dst: ADDR.vip6, nextHeader: IPPROTO.HOPOPTS, payloadLength: 2 }).payload(Buffer.from([6, 0])).build(); return f; },
  verdict: 'DROP', stats: { malformed_l3: 1 } });
add({ name: 'TCP with a wrong checksum: forwarded, still wrong by the same amount (we never launder it)',
  input: () => pkt().eth(fromClient).ipv4({ src: ADDR.client4, dst: ADDR.vip4, id: 7 }).tcp({ sport: 10100, dport: 80, flags: 'S', seq: 1000, checksum: 'bad' }).payload(PAYLOAD).build(),
  verdict: 'REDIRECT',
  check: (t, out, env) => {
    const good = toBackend(env, 4, 'tcp', 10100);
    const p = parse(out);
    t.equal(p.tcp?.checksumOk, false, 'still invalid');
    const input = pkt().eth(fromClient).ipv4({ src: ADDR.client4, dst: ADDR.vip4, id: 7 }).tcp({ sport: 10100, dport: 80, flags: 'S', seq: 1000, checksum: 'bad' }).payload(PAYLOAD).build();
    t.equal(tcpChecksumError4(out), tcpChecksumError4(input), 'off by exactly the injected error');
    t.same(out.subarray(0, 14 + 20 + 16), good.subarray(0, 14 + 20 + 16), 'everything else as expected');
  },
  stats: { ct_create: 1, fwd_redirect: 1 } });
add({ name: 'IPv4 header with a wrong checksum: forwarded, still wrong',
  input: () => clientPacket(4, 'tcp', 10101, { ipv4: { checksum: 'bad' } }), verdict: 'REDIRECT',
  check: (t, out) => { const p = parse(out); t.equal(p.ip?.checksumOk, false); t.equal(p.tcp?.checksumOk, true); },
  stats: { ct_create: 1, fwd_redirect: 1 } });
add({ name: 'Ethernet-padded 60-byte UDP frame: balanced, padding kept',
  input: () => Buffer.concat([clientPacket(4, 'udp', 10102, { payload: Buffer.from('x') }), Buffer.alloc(17, 0xee)]), verdict: 'REDIRECT',
  output: (env) => Buffer.concat([toBackend(env, 4, 'udp', 10102, { payload: Buffer.from('x') }), Buffer.alloc(17, 0xee)]),
  stats: { ct_create: 1, fwd_redirect: 1 } });

// Backend set changes (frontend 198.51.100.18, port 7100).
let moverPort = 0;
let moverBackend = '';
add({ name: 'backend set changes: an established flow keeps its backend',
  setup: (env) => {
    // Re-weighting backend 3 to 3 moves many slots; pick a flow whose slot moves.
    const reweighted = [...fe18Backends({}, [1, 2]), { address: ADDR.backend4(3), port: 7100, weight: 3, state: 'active' as const }];
    moverPort = portThatMoves(env, reweighted.map((b) => ({ key: `${b.address}|${b.port}`, weight: b.weight })), 52000);
    env.run(clientPacket(4, 'tcp', moverPort, {}, '198.51.100.18'));
    moverBackend = env.predict(flowOf(4, 'tcp', moverPort, '198.51.100.18'), 'TCP').backend;
    env.apply(withFe18(env, reweighted));
  },
  input: () => clientPacket(4, 'tcp', moverPort, { flags: 'A' }, '198.51.100.18'), verdict: 'REDIRECT',
  check: (t, out) => t.equal(parse(out).ip?.dst, moverBackend, `still on ${moverBackend}`),
  stats: { ct_hit: 1, fwd_redirect: 1 } });
let termPort = 0;
let termBackend = '';
add({ name: 'terminating backend: keeps its established flow',
  setup: (env) => {
    env.apply(withFe18(env, fe18Backends()));
    for (termPort = 53000; env.predict(flowOf(4, 'tcp', termPort, '198.51.100.18'), 'TCP').backend !== ADDR.backend4(2); termPort++);
    env.run(clientPacket(4, 'tcp', termPort, {}, '198.51.100.18'));
    termBackend = ADDR.backend4(2);
    env.apply(withFe18(env, fe18Backends({ 2: 'terminating' })));
  },
  input: () => clientPacket(4, 'tcp', termPort, { flags: 'A' }, '198.51.100.18'), verdict: 'REDIRECT',
  check: (t, out) => t.equal(parse(out).ip?.dst, termBackend),
  stats: { ct_hit: 1, fwd_redirect: 1 } });
add({ name: 'terminating backend: takes no new flow',
  input: () => clientPacket(4, 'tcp', termPort + 1, {}, '198.51.100.18'), verdict: 'REDIRECT',
  check: (t, out) => t.not(parse(out).ip?.dst, ADDR.backend4(2)),
  stats: { ct_create: 1, fwd_redirect: 1 } });
let gonePort = 0;
add({ name: 'removed backend (rebalance policy): its flow moves to a remaining backend',
  setup: (env) => {
    env.apply(withFe18(env, fe18Backends()));
    for (gonePort = 54000; env.predict(flowOf(4, 'tcp', gonePort, '198.51.100.18'), 'TCP').backend !== ADDR.backend4(1); gonePort++);
    env.run(clientPacket(4, 'tcp', gonePort, {}, '198.51.100.18'));
    env.apply(withFe18(env, fe18Backends({}, [2, 3])));
  },
  input: () => clientPacket(4, 'tcp', gonePort, { flags: 'A' }, '198.51.100.18'), verdict: 'REDIRECT',
  output: (env) => toBackend(env, 4, 'tcp', gonePort, { flags: 'A' }, '198.51.100.18', 80),
  check: (t, out) => t.not(parse(out).ip?.dst, ADDR.backend4(1)),
  stats: { backend_rebalanced: 1, ct_create: 1, fwd_redirect: 1 } });
let resetPort = 0;
add({ name: 'removed backend (reset policy): its flow is dropped, counted backend_gone',
  setup: (env) => {
    env.apply(baseFrontends());
    const fe16 = (only: number[]) => baseFrontends().map((f) => (f.address === '198.51.100.16' ? { ...f, backends: only.map((i) => ({ address: ADDR.backend4(i), port: 7000, weight: 1, state: 'active' as const })) } : f));
    for (resetPort = 55000; env.predict(flowOf(4, 'tcp', resetPort, '198.51.100.16'), 'TCP').backend !== ADDR.backend4(1); resetPort++);
    env.run(clientPacket(4, 'tcp', resetPort, {}, '198.51.100.16'));
    env.apply(fe16([2]));
  },
  after: (env) => env.apply(baseFrontends()),
  input: () => clientPacket(4, 'tcp', resetPort, { flags: 'A' }, '198.51.100.16'), verdict: 'DROP', stats: { backend_gone: 1 } });
add({ name: 'removed frontend: its packets pass untouched',
  setup: (env) => env.apply(withFe18(env, null)), after: (env) => env.apply(baseFrontends()),
  input: () => clientPacket(4, 'tcp', 56000, {}, '198.51.100.18'), verdict: 'PASS', stats: {} });
add({ name: 'SNAT port range exhausted: drop snat_exhausted, nothing else disturbed',
  setup: (env) => {
    env.sync.setNodeConfig({ snatV4: ADDR.snat4, snatV6: ADDR.snat6, portMin: 45000, portMax: 45000 });
    env.run(clientPacket(4, 'tcp', 57000, {}, '198.51.100.17'));
  },
  after: (env) => env.sync.setNodeConfig({ snatV4: ADDR.snat4, snatV6: ADDR.snat6, portMin: PORT_MIN, portMax: 40999 }),
  input: () => clientPacket(4, 'tcp', 57001, {}, '198.51.100.17'), verdict: 'DROP', stats: { snat_exhausted: 1 } });

// ------------------------------------------------------------------ runner

const skip = privilegedUnavailable();
let env: FixtureEnv | undefined;
let fixtureLab: Lab | undefined;

t.before(async () => {
  if (skip) return;
  fixtureLab = await withLab(t, 'phdfx');
  env = await FixtureEnv.create(fixtureLab, '/run/pharos/bpffs/phd-fixtures');
});
t.teardown(() => env?.close());

t.test(`at least 60 fixture rows (${rows.length})`, async (t) => {
  t.ok(rows.length >= 60);
  t.equal(new Set(rows.map((r) => r.name)).size, rows.length, 'names are unique');
});

const verdictName = (n: number): string => Object.entries(XDP).find(([, v]) => v === n)?.[0] ?? `verdict ${n}`;

for (const row of rows) {
  t.test(row.name, { skip }, async (t) => {
    const e = env!;
    try {
      row.setup?.(e);
      const input = row.input(e);
      const before = e.counters();
      const res = e.run(input, row.ingress ?? 'fx0');
      const after = e.counters();
      t.equal(verdictName(res.retval), row.verdict, 'verdict');
      const expected = row.output ? row.output(e) : row.check ? undefined : input;
      if (expected && expected.length > 0) {
        const diff = hexDiff(expected, res.dataOut);
        t.ok(diff === '', diff === '' ? 'output frame as expected' : `output differs:\n${diff}`);
      }
      row.check?.(t, res.dataOut, e);
      const moved = Object.fromEntries(STAT_REASONS.map((r) => [r, Number(after[r] - before[r])]).filter(([, d]) => d !== 0));
      t.same(moved, row.stats, 'counter deltas');
    } finally {
      row.after?.(e);
    }
  });
}

// ------------------------------------------------------------------ tc egress (reverse NAT of a same-node backend's replies)

function tcRun(e: FixtureEnv, frame: Buffer): { retval: number; out: Buffer } {
  const r = e.addon.testRun(e.dp.tcEgress.fd, { data: frame, netns: e.nsPath });
  return { retval: r.retval, out: r.dataOut };
}

t.test('tc egress: reply of the same-node backend leaves as VIP:80 → client, checksums valid', { skip }, async (t) => {
  const e = env!;
  e.run(clientPacket(4, 'tcp', 10400, {}, '198.51.100.12')); // DNAT to 198.18.3.1:8080, reverse entry for tc
  const before = e.counters();
  const reply = frame(4, { src: MAC.fx0, dst: MAC.client }, { src: ADDR.local4, dst: ADDR.client4, sport: 8080, dport: 10400 }, 'tcp', { flags: 'SA' });
  const { retval, out } = tcRun(e, reply);
  t.equal(retval, 0, 'TC_ACT_OK');
  const want = frame(4, { src: MAC.fx0, dst: MAC.client }, { src: '198.51.100.12', dst: ADDR.client4, sport: 80, dport: 10400 }, 'tcp', { flags: 'SA' });
  t.equal(hexDiff(want, out), '', 'rewritten to come from the VIP');
  t.equal(Number(e.counters().tc_rev_nat - before.tc_rev_nat), 1);
});

t.test('tc egress: other traffic leaves untouched', { skip }, async (t) => {
  const e = env!;
  const other = frame(4, { src: MAC.fx0, dst: MAC.client }, { src: ADDR.local4, dst: ADDR.client4, sport: 8080, dport: 10401 }, 'udp');
  const { retval, out } = tcRun(e, other);
  t.equal(retval, 0);
  t.equal(hexDiff(other, out), '');
  const arp = arpRequest();
  t.equal(hexDiff(arp, tcRun(e, arp).out), '', 'ARP untouched');
});

t.test('a full frontend map refuses the overflow with an error naming the map; existing frontends keep working', { skip }, async (t) => {
  const e = env!;
  const max = e.dp.maps.frontends.maxEntries;
  const extra: Frontend[] = Array.from({ length: max + 5 }, (_, i) => ({
    ...baseFrontends()[0]!, service: `fx/extra-${i}`, address: `203.0.113.${i % 250}`, port: 1000 + i,
  }));
  try {
    const r = e.sync.apply([...baseFrontends(), ...extra]);
    const full = r.errors.filter((x) => x.map === 'ph_frontends');
    t.ok(full.length >= 5, `${full.length} frontends refused`);
    t.match(full[0]!.message, /frontend map full/);
    t.ok((e.sync.mapFull.ph_frontends ?? 0) >= full.length, 'counted for the metric');
    t.equal(e.sync.pressure().ph_frontends.used, max - 1, 'every usable id taken');
    const res = e.run(clientPacket(4, 'tcp', 10500));
    t.equal(res.retval, XDP.REDIRECT, 'the VIP still balances');
  } finally {
    e.apply(baseFrontends());
  }
  t.equal(e.sync.pressure().ph_frontends.used, baseFrontends().length, 'overflow removed again');
});

t.test('two LB nodes with the same seed send every flow to the same backend (ids assigned in another order)', { skip }, async (t) => {
  const other = await FixtureEnv.create(fixtureLab!, '/run/pharos/bpffs/phd-fixtures-b', { nsName: 'fxb' });
  try {
    // Node B learned the backends in the opposite order, so its backend ids differ from node A's.
    const reversed = baseFrontends().map((f) => ({ ...f, backends: [...f.backends].reverse() }));
    other.apply([]);
    other.apply(reversed.map((f) => ({ ...f, backends: f.backends.slice(0, 1) })));
    other.apply(reversed);
    const idsA = [...env!.sync.current().backends.values()].map((b) => `${b.address}=${b.id}`).sort();
    const idsB = [...other.sync.current().backends.values()].map((b) => `${b.address}=${b.id}`).sort();
    t.notSame(idsA, idsB, 'backend ids differ between the nodes');
    let same = 0;
    for (let sport = 30000; sport < 30040; sport++) {
      const a = parse(env!.run(clientPacket(4, 'tcp', sport)).dataOut).ip?.dst;
      const b = parse(other.run(clientPacket(4, 'tcp', sport)).dataOut).ip?.dst;
      if (a && a === b) same++;
    }
    t.equal(same, 40, 'all 40 flows picked the same backend on both nodes');
  } finally {
    other.close();
  }
});
