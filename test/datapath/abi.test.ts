/**
 * abi.ts must agree with the C, which is the one source of every shared
 * value: the counter enum and its drop/pass classes, the .rodata names and
 * initial values (the loader's and the agent's defaults, the hash seed among
 * them) and the IPv6 extension-header bound are parsed from the headers;
 * struct layouts and every map's max_entries are read from the compiled
 * object's BTF (bpftool), and every codec is checked against those offsets.
 * Changing one side only fails here.
 */
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BPF_SOURCE_DIR, ensureBpfObject } from '../../src/datapath/bpf-build.js';
import * as abi from '../../src/datapath/abi.js';
import { DEFAULT_CONFIG, DEFAULT_SIZES, expectedMaps, rodataValues } from '../../src/datapath/loader.js';
import { defaults as agentDefaults } from '../../src/agent/config.js';
import { btfMapMaxEntries, btfStructs, type BtfStruct } from '../support/btf.js';


let structs: Map<string, BtfStruct> | undefined;
function layout(name: string): BtfStruct {
  structs ??= btfStructs(ensureBpfObject('lb'));
  const s = structs.get(name);
  if (!s) throw new Error(`struct ${name} not in BTF`);
  return s;
}

t.test('stat enum in stats.h equals STAT_REASONS', async (t) => {
  const src = readFileSync(join(BPF_SOURCE_DIR, 'lib', 'stats.h'), 'utf8');
  const entries = [...src.matchAll(/^\s*PH_STAT_([A-Z0-9_]+)\s*=\s*(\d+),/gm)].map((m) => [m[1]!.toLowerCase(), Number(m[2])] as const);
  const max = entries.find(([n]) => n === 'max');
  const reasons = entries.filter(([n]) => n !== 'max');
  t.same(reasons.map(([, v]) => v), reasons.map((_, i) => i), 'values are 0..n-1 in order');
  t.same(reasons.map(([n]) => n), [...abi.STAT_REASONS]);
  t.equal(max?.[1], abi.STAT_REASONS.length, 'PH_STAT_MAX');
});

t.test('.rodata variables in config.h equal RODATA', async (t) => {
  const src = readFileSync(join(BPF_SOURCE_DIR, 'lib', 'config.h'), 'utf8');
  const sizes: Record<string, number> = { __u8: 1, __u16: 2, __u32: 4, __u64: 8 };
  const vars = Object.fromEntries([...src.matchAll(/const volatile (__u\d+) (cfg_\w+)/g)].map((m) => [m[2]!, sizes[m[1]!]!]));
  t.same(vars, abi.RODATA);
});

t.test('map names in maps.h/stats.h match MAP and fit 15 chars', async (t) => {
  const src = ['maps.h', 'stats.h', 'l2_foreign.h'].map((h) => readFileSync(join(BPF_SOURCE_DIR, 'lib', h), 'utf8')).join('');
  const names = [...src.matchAll(/^\}\s*(ph_\w+)\s+SEC\("\.maps"\)/gm)].map((m) => m[1]!).sort();
  t.same(names, Object.values(abi.MAP).sort());
  for (const n of names) t.ok(n.length <= 15, `${n} ≤ 15 chars`);
});

t.test('tail-call slots in maps.h match TAIL_CALLS, and each names a program of the object', async (t) => {
  const src = readFileSync(join(BPF_SOURCE_DIR, 'lib', 'maps.h'), 'utf8');
  const slots = Object.fromEntries([...src.matchAll(/^#define PH_PROG_(\w+)\s+(\d+)/gm)].map((m) => [m[1]!, Number(m[2])]));
  t.same(slots, { NEW_FLOW: 0, CONTROL: 1, MAX: 2 });
  t.equal(abi.TAIL_CALLS[slots.NEW_FLOW!], abi.PROG.xdpNewFlow);
  t.equal(abi.TAIL_CALLS[slots.CONTROL!], abi.PROG.xdpControl);
  t.equal(abi.TAIL_CALLS.length, slots.MAX);
  const lb = readFileSync(join(BPF_SOURCE_DIR, 'lb.bpf.c'), 'utf8');
  t.match(lb, /^int pharos_tc_egress\(/m, 'pharos_tc_egress defined in lb.bpf.c');
  // Entry points are named per build in lib/ctx.h: the tc branch first, then the XDP one.
  const ctx = readFileSync(join(BPF_SOURCE_DIR, 'lib', 'ctx.h'), 'utf8');
  const entry = (macro: string): string[] => [...ctx.matchAll(new RegExp(`^#define PH_ENTRY_${macro} (\\w+)`, 'gm'))].map((m) => m[1]!);
  for (const macro of ['MAIN', 'NEW_FLOW', 'CONTROL']) t.match(lb, new RegExp(`^int PH_ENTRY_${macro}\\(`, 'm'), `PH_ENTRY_${macro} defined in lb.bpf.c`);
  for (const [i, hook] of (['tc', 'xdp'] as const).entries()) {
    const build = abi.HOOK_BUILD[hook];
    t.same([entry('MAIN')[i], entry('NEW_FLOW')[i], entry('CONTROL')[i]], [build.entry, ...build.tailCalls], `${hook} build names`);
  }
  t.same(abi.HOOK_BUILD.xdp.tailCalls, abi.TAIL_CALLS);
});

t.test('flag constants match the C', async (t) => {
  const src = readFileSync(join(BPF_SOURCE_DIR, 'lib', 'maps.h'), 'utf8');
  const defs = Object.fromEntries([...src.matchAll(/#define (PH_\w+)\s+\(?(\d+)(?: << (\d+))?\)?/g)].map((m) => [m[1]!, Number(m[2]) << Number(m[3] ?? 0)]));
  t.equal(defs.PH_FE_RESET_ON_REMOVE, abi.FE_RESET_ON_REMOVE);
  t.equal(defs.PH_FE_LOCAL_ONLY, abi.FE_LOCAL_ONLY);
  t.equal(defs.PH_FE_AFFINITY, abi.FE_AFFINITY);
  t.equal(defs.PH_FE_SOURCE_RANGES, abi.FE_SOURCE_RANGES);
  t.equal(defs.PH_FE_DSR, abi.FE_DSR);
  t.equal(defs.PH_FE_DSR_ENCAP, abi.FE_DSR_ENCAP);
  t.equal(defs.PH_FE_DSR_L2, abi.FE_DSR_L2);
  t.equal(defs.PH_CT_NEW, abi.CT_NEW);
  t.equal(defs.PH_CT_ESTABLISHED, abi.CT_ESTABLISHED);
  t.equal(defs.PH_CT_CLOSING, abi.CT_CLOSING);
  t.equal(defs.PH_CTF_SNAT, abi.CTF_SNAT);
  t.equal(defs.PH_CTF_LOCAL, abi.CTF_LOCAL);
  t.equal(defs.PH_BE_DRAINING, abi.BE_DRAINING);
  t.equal(defs.PH_BE_LOCAL, abi.BE_LOCAL);
  t.equal(defs.PH_BE_ONLINK, abi.BE_ONLINK);
  t.equal(defs.PH_BE_OFFLINK, abi.BE_OFFLINK);
  t.same(abi.decodeBackend(abi.encodeBackend({ address: '198.18.0.2', port: 80, local: true, draining: true })), { address: '198.18.0.2', port: 80, local: true, draining: true });
  t.equal(defs.PH_AF_INET, abi.AF_INET);
  t.equal(defs.PH_AF_INET6, abi.AF_INET6);
});

t.test('struct sizes match BTF', async (t) => {
  const sizes: Record<string, number> = {
    ph_fe_key: abi.SIZE.feKey, ph_fe_value: abi.SIZE.feValue, ph_backend: abi.SIZE.backend, ph_flow: abi.SIZE.flow,
    ph_ct: abi.SIZE.ct, ph_be_nh: abi.SIZE.beNextHop, ph_rev: abi.SIZE.rev, ph_runtime: abi.SIZE.runtime, ph_liveness: abi.SIZE.liveness, ph_resp_key: abi.SIZE.respKey,
    ph_resp_value: abi.SIZE.respValue, ph_traffic: abi.SIZE.traffic, ph_src_key: abi.SIZE.srcKey, ph_aff_key: abi.SIZE.affKey,
    ph_aff_value: abi.SIZE.affValue, ph_member_key: 8, ph_vip_key: abi.SIZE.vipKey, ph_l2_foreign: abi.SIZE.l2Foreign,
    ph_scratch: abi.SIZE.ct + abi.SIZE.rev + abi.SIZE.flow + abi.SIZE.affKey + abi.SIZE.affValue,
  };
  for (const [name, size] of Object.entries(sizes)) t.equal(layout(name).size, size, name);
});

t.test('frontend codecs write at the BTF offsets and round-trip', async (t) => {
  const o = layout('ph_fe_key').offsets;
  const k = abi.encodeFrontendKey({ address: '198.51.100.7', port: 8080, protocol: 'UDP' });
  t.same([...k.subarray(o.addr!, o.addr! + 4)], [198, 51, 100, 7]);
  t.equal(k.readUInt16BE(o.port!), 8080);
  t.equal(k[o.proto!], abi.IPPROTO_UDP);
  t.equal(k[o.family!], abi.AF_INET);
  t.same(abi.decodeFrontendKey(k), { address: '198.51.100.7', port: 8080, protocol: 'UDP' });
  const k6 = abi.encodeFrontendKey({ address: '2001:db8::7', port: 443, protocol: 'TCP' });
  t.same(abi.decodeFrontendKey(k6), { address: '2001:db8::7', port: 443, protocol: 'TCP' });
  t.equal(k6[o.family!], abi.AF_INET6);

  const vo = layout('ph_fe_value').offsets;
  const v = abi.encodeFrontendValue({ id: 77, flags: abi.FE_RESET_ON_REMOVE, backends: 3, affinityTimeout: 10800, table: 9, tableSize: 509 });
  t.equal(v.readUInt32LE(vo.id!), 77);
  t.equal(v.readUInt16LE(vo.flags!), 1);
  t.equal(v.readUInt16LE(vo.backends!), 3);
  t.equal(v.readUInt32LE(vo.affinity_timeout!), 10800);
  t.equal(v.readUInt32LE(vo.table!), 9);
  t.equal(v.readUInt32LE(vo.table_size!), 509);
  t.same(abi.decodeFrontendValue(v), { id: 77, flags: 1, backends: 3, affinityTimeout: 10800, table: 9, tableSize: 509 });
});

t.test('Maglev tables pack two slots per 8-byte element, as maglev_pick reads them', async (t) => {
  const slots = Uint32Array.from([11, 22, 33, 44, 55]);
  const b = abi.encodeMaglevTable(slots);
  t.equal(b.length, 8 * abi.maglevTableElements(5));
  for (let s = 0; s < slots.length; s++) {
    const pair = b.readBigUInt64LE(8 * (s >> 1));
    t.equal(Number(s & 1 ? pair >> 32n : pair & 0xffffffffn), slots[s], `slot ${s}`);
  }
});

t.test('backend, flow, runtime and responder codecs match BTF', async (t) => {
  const bo = layout('ph_backend').offsets;
  const b = abi.encodeBackend({ address: '2001:db8:1::2', port: 9000 });
  t.equal(b.readUInt16BE(bo.port!), 9000);
  t.equal(b[bo.family!], abi.AF_INET6);
  t.same(abi.decodeBackend(b), { address: '2001:db8:1::2', port: 9000 });

  const fo = layout('ph_flow').offsets;
  const f = abi.encodeFlow({ src: '192.0.2.1', dst: '198.51.100.1', sport: 1234, dport: 80, proto: 6 });
  t.same([...f.subarray(fo.dst!, fo.dst! + 4)], [198, 51, 100, 1]);
  t.equal(f.readUInt16BE(fo.sport!), 1234);
  t.equal(f.readUInt16BE(fo.dport!), 80);
  t.equal(f[fo.proto!], 6);
  t.equal(f[fo.family!], abi.AF_INET);
  t.same(abi.decodeFlow(f), { src: '192.0.2.1', dst: '198.51.100.1', sport: 1234, dport: 80, proto: 6 });
  t.throws(() => abi.encodeFlow({ src: '192.0.2.1', dst: '2001:db8::1', sport: 1, dport: 1, proto: 6 }), /mixes/);

  const ro = layout('ph_runtime').offsets;
  const r = abi.encodeRuntime({ snatV4: '198.18.1.1', snatV6: '2001:db8::1', portMin: 40000, portMax: 49999 });
  t.same([...r.subarray(ro.snat_v4!, ro.snat_v4! + 4)], [198, 18, 1, 1]);
  t.same([...r.subarray(ro.snat_v6!, ro.snat_v6! + 2)], [0x20, 0x01]);
  t.equal(r.readUInt16LE(ro.port_min!), 40000);
  t.equal(r.readUInt16LE(ro.port_max!), 49999);
  t.same(abi.decodeRuntime(r), { snatV4: '198.18.1.1', snatV6: '2001:db8::1', portMin: 40000, portMax: 49999 });
  t.throws(() => abi.encodeRuntime({ snatV4: '2001:db8::1', portMin: 1, portMax: 2 }), /not IPv4/);
  const lo = layout('ph_liveness').offsets;
  t.equal(abi.encodeLiveness(123456789n).readBigUInt64LE(lo.stamp_ns!), 123456789n);
  t.equal(abi.decodeLiveness(abi.encodeLiveness(42n)), 42n);

  const ko = layout('ph_resp_key').offsets;
  const k = abi.encodeResponderKey({ address: '203.0.113.9', ifindex: 42 });
  t.equal(k.readUInt32LE(ko.ifindex!), 42);
  t.equal(k[ko.family!], abi.AF_INET);
  t.same(abi.decodeResponderKey(k), { address: '203.0.113.9', ifindex: 42 });
  t.same(abi.decodeResponderValue(abi.encodeResponderValue('02:00:5e:10:00:01')), { mac: '02:00:5e:10:00:01' });
  t.throws(() => abi.encodeResponderValue('02:00'), /MAC/);

  const fo2 = layout('ph_l2_foreign').offsets;
  const foreign = Buffer.alloc(abi.SIZE.l2Foreign);
  foreign.writeBigUInt64LE(3n, fo2.count!);
  foreign.writeBigUInt64LE(77n, fo2.last_ns!);
  foreign.set([2, 0, 0x5e, 0, 0, 9], fo2.mac!);
  t.same(abi.decodeL2Foreign(foreign), { count: 3n, lastNs: 77n, mac: '02:00:5e:00:00:09' });
});

t.test('conntrack and reverse NAT decoders read the BTF offsets', async (t) => {
  const co = layout('ph_ct').offsets;
  const ct = Buffer.alloc(abi.SIZE.ct);
  ct.writeBigUInt64LE(5n, co.last_seen!);
  ct.writeUInt32LE(9, co.backend_id!);
  ct.writeUInt32LE(4, co.frontend_id!);
  ct.set([198, 18, 0, 2], co.snat_addr!);
  ct.writeUInt16BE(40001, co.snat_port!);
  ct[co.state!] = abi.CT_ESTABLISHED;
  ct[co.flags!] = abi.CTF_SNAT;
  const d = abi.decodeConntrack(ct, abi.AF_INET);
  t.match(d, { lastSeenNs: 5n, backendId: 9, frontendId: 4, snatAddress: '198.18.0.2', snatPort: 40001, state: abi.CT_ESTABLISHED });

  const no = layout('ph_be_nh').offsets;
  const nh = Buffer.alloc(abi.SIZE.beNextHop);
  nh.writeUInt32LE(7, no.nh!);
  nh.set([2, 0, 0, 0, 0, 1], no.nh! + 10);
  nh.writeBigUInt64LE(99n, no.fib_at!);
  t.match(abi.decodeBackendNextHop(nh), { ifindex: 7, dmac: '02:00:00:00:00:01', resolvedAtNs: 99n });

  const ro = layout('ph_rev').offsets;
  const rv = Buffer.alloc(abi.SIZE.rev);
  abi.addrBytes('2001:db8::5').copy(rv, ro.new_src!);
  abi.addrBytes('2001:db8::99').copy(rv, ro.new_dst!);
  rv.writeUInt16BE(80, ro.new_sport!);
  rv.writeUInt16BE(5555, ro.new_dport!);
  rv.writeUInt32LE(12, ro.backend_id!);
  rv[ro.flags!] = abi.CTF_LOCAL;
  t.match(abi.decodeReverseNat(rv, abi.AF_INET6), { newSrc: '2001:db8::5', newDst: '2001:db8::99', newSport: 80, newDport: 5555, backendId: 12, flags: abi.CTF_LOCAL });
});

t.test('addresses round-trip in RFC 5952 form', async (t) => {
  for (const a of ['::', '::1', '2001:db8::', '2001:db8:0:1::1', '2001:db8:1:2:3:4:5:6', 'fe80::1:0:0:1', '0.0.0.0', '255.255.255.255']) {
    const b = abi.addrBytes(a);
    t.equal(abi.readAddr(b, 0, a.includes(':') ? abi.AF_INET6 : abi.AF_INET), a);
  }
  t.equal(abi.readAddr(abi.addrBytes('::ffff:192.0.2.1'), 0, abi.AF_INET6), '::ffff:c000:201');
  t.equal(abi.readAddr(abi.addrBytes('2001:DB8:0:0:1:0:0:1'), 0, abi.AF_INET6), '2001:db8::1:0:0:1');
  t.throws(() => abi.addrBytes('nope'), /not an IP/);
  t.same(abi.encodeRodata('cfg_snat', 1), Buffer.from([1]));
  t.equal(abi.encodeRodata('cfg_udp_ns', 5n).readBigUInt64LE(0), 5n);
});

t.test('source-range, affinity and member keys match BTF; CIDRs are masked and checked', async (t) => {
  const so = layout('ph_src_key').offsets;
  const k = abi.encodeSourceRangeKey(9, '192.0.2.77/24');
  t.equal(k.readUInt32LE(so.prefixlen!), 32 + 24);
  t.equal(k.readUInt32LE(so.frontend_id!), 9);
  t.same([...k.subarray(so.addr!, so.addr! + 4)], [192, 0, 2, 0], 'host bits cleared');
  t.equal(abi.encodeSourceRangeKey(9, '2001:db8::1').readUInt32LE(0), 32 + 128, 'bare address = full length');
  t.same(abi.decodeSourceRangeKey(abi.encodeSourceRangeKey(3, '2001:db8:ff::/47')).prefixBits, 47);
  t.equal(abi.encodeSourceRangeKey(3, '2001:db8:1::/47').toString('hex'), abi.encodeSourceRangeKey(3, '2001:db8::/47').toString('hex'));
  for (const bad of ['192.0.2.0/33', '192.0.2.0/x', 'nope/8', '2001:db8::/129']) t.throws(() => abi.encodeSourceRangeKey(1, bad), /CIDR|not an IP/, bad);
  const ao = layout('ph_aff_key').offsets;
  const a = abi.encodeAffinityKey(5, '2001:db8::9');
  t.equal(a.readUInt32LE(ao.frontend_id!), 5);
  t.equal(a[ao.family!], abi.AF_INET6);
  t.equal(abi.readAddr(a, ao.client!, abi.AF_INET6), '2001:db8::9');
  const vo = layout('ph_aff_value').offsets;
  const v = Buffer.alloc(abi.SIZE.affValue);
  v.writeBigUInt64LE(42n, vo.last_seen!);
  v.writeUInt32LE(7, vo.backend_id!);
  t.same(abi.decodeAffinityValue(v), { lastSeenNs: 42n, backendId: 7 });
  const mo = layout('ph_member_key').offsets;
  const m = abi.encodeMemberKey(4, 11);
  t.same([m.readUInt32LE(mo.frontend_id!), m.readUInt32LE(mo.backend_id!)], [4, 11]);
  const vk = layout('ph_vip_key').offsets;
  t.equal(abi.encodeVipKey('2001:db8::1')[vk.family!], abi.AF_INET6);
  t.same([...abi.encodeVipKey('192.0.2.9').subarray(vk.addr!, vk.addr! + 4)], [192, 0, 2, 9]);
  const bo = layout('ph_backend').offsets;
  t.equal(abi.encodeBackend({ address: '192.0.2.1', port: 1, draining: true })[bo.flags!], abi.BE_DRAINING);
  t.same(abi.decodeBackend(abi.encodeBackend({ address: '192.0.2.1', port: 1, draining: true })), { address: '192.0.2.1', port: 1, draining: true });
});

/** A C initialiser of config.h: a product of integer literals (`3600ULL * 1000000000ULL`, `0x50484152`). */
function evalCInteger(expr: string): bigint {
  return expr.split('*').map((f) => f.trim().replace(/(?:ULL|UL|U|LL|L)$/i, '')).reduce((acc, f) => {
    if (!/^(?:0x[0-9a-f]+|\d+)$/i.test(f)) throw new Error(`config.h: cannot evaluate ${JSON.stringify(expr)}`);
    return acc * BigInt(f);
  }, 1n);
}

t.test('.rodata initial values in config.h equal RODATA_DEFAULTS, and the loader and the agent default to them', async (t) => {
  const src = readFileSync(join(BPF_SOURCE_DIR, 'lib', 'config.h'), 'utf8');
  const initial = Object.fromEntries([...src.matchAll(/const volatile __u\d+ (cfg_\w+) = ([^;]+);/g)].map((m) => [m[1]!, evalCInteger(m[2]!)]));
  const mirrored = Object.fromEntries(Object.entries(abi.RODATA_DEFAULTS).map(([k, v]) => [k, BigInt(v)]));
  t.same(initial, mirrored, 'config.h initial values');
  const loaderValues = Object.fromEntries(Object.entries(rodataValues(DEFAULT_CONFIG)).map(([k, v]) => [k, BigInt(v)]));
  t.same(loaderValues, mirrored, 'the loader\'s DEFAULT_CONFIG sets what the C holds');
  const agent = agentDefaults('abi-test');
  // Every LB node must hash with one seed: an agent that was given none and a data path loaded without one agree.
  t.equal(agent.hashSeed, DEFAULT_CONFIG.hashSeed, 'agent --hash-seed default');
  t.equal(BigInt(agent.responderMaxAgeSeconds) * 1_000_000_000n, abi.RODATA_DEFAULTS.cfg_liveness_max_ns, 'agent --responder-max-age default');
});

t.test('every map\'s max_entries in the object equals MAX_ENTRIES, and the loader and the agent create those by default', async (t) => {
  const declared = btfMapMaxEntries(ensureBpfObject('lb'));
  const expected = expectedMaps(DEFAULT_SIZES);
  for (const role of Object.keys(abi.MAP) as abi.MapRole[]) {
    t.equal(declared.get(abi.MAP[role]), abi.MAX_ENTRIES[role], `${abi.MAP[role]} in the C`);
    // -1: not compared on adoption (ph_stats grows with the enum).
    if (expected[role].maxEntries >= 0) t.equal(expected[role].maxEntries, abi.MAX_ENTRIES[role], `${abi.MAP[role]} as the loader creates it`);
  }
  t.equal(abi.MAX_ENTRIES.stats, abi.STAT_REASONS.length);
  const agent = agentDefaults('abi-test');
  t.same([agent.conntrackSize, agent.frontendMapSize, agent.backendMapSize, agent.responderMapSize],
    [abi.MAX_ENTRIES.conntrack, abi.MAX_ENTRIES.frontends, abi.MAX_ENTRIES.backends, abi.MAX_ENTRIES.responder], 'agent map-size flag defaults');
});

t.test('the IPv6 extension-header bound in parsing.h equals IPV6_MAX_EXT_HEADERS', async (t) => {
  const src = readFileSync(join(BPF_SOURCE_DIR, 'lib', 'parsing.h'), 'utf8');
  t.equal(Number(/^#define PH_IPV6_MAX_EXT (\d+)/m.exec(src)?.[1]), abi.IPV6_MAX_EXT_HEADERS);
});

t.test('drop/pass classes of stats.h equal DROP_REASONS / PASS_REASONS, and every count_and() in the C returns its class\'s verdict', async (t) => {
  const src = readFileSync(join(BPF_SOURCE_DIR, 'lib', 'stats.h'), 'utf8');
  const classes = [...src.matchAll(/^\s*PH_STAT_([A-Z0-9_]+)\s*=\s*\d+,\s*\/\*\s*(drop:|pass:)?/gm)].map((m) => [m[1]!.toLowerCase(), m[2]] as const);
  t.same(classes.filter(([, c]) => c === 'drop:').map(([n]) => n).sort(), [...abi.DROP_REASONS].sort(), 'drop: reasons');
  t.same(classes.filter(([, c]) => c === 'pass:').map(([n]) => n).sort(), [...abi.PASS_REASONS].sort(), 'pass: reasons');
  const sources = [
    ...readdirSync(BPF_SOURCE_DIR).filter((f) => f.endsWith('.c')).map((f) => join(BPF_SOURCE_DIR, f)),
    ...readdirSync(join(BPF_SOURCE_DIR, 'lib')).filter((f) => f.endsWith('.h')).map((f) => join(BPF_SOURCE_DIR, 'lib', f)),
  ];
  let calls = 0;
  for (const file of sources) {
    for (const m of readFileSync(file, 'utf8').matchAll(/count_and\(PH_STAT_(\w+),\s*PH_(DROP|PASS)\)/g)) {
      const reason = m[1]!.toLowerCase() as abi.StatReason;
      const set = m[2] === 'DROP' ? abi.DROP_REASONS : abi.PASS_REASONS;
      t.ok(set.has(reason), `${file.slice(BPF_SOURCE_DIR.length + 1)}: ${reason} ends in ${m[2]}`);
      calls++;
    }
  }
  t.ok(calls > 20, `${calls} count_and() calls checked`);
});

t.test('family offsets used outside the codecs read the BTF offsets', async (t) => {
  const fo = layout('ph_flow').offsets;
  const f = abi.encodeFlow({ src: '2001:db8::1', dst: '2001:db8::2', sport: 1, dport: 2, proto: 17 });
  t.equal(abi.flowFamily(f), f[fo.family!]);
  t.equal(abi.flowFamily(f), abi.AF_INET6);
  const bo = layout('ph_backend').offsets;
  const slot = Buffer.alloc(abi.SIZE.backend);
  t.ok(abi.isFreeBackendSlot(slot), 'all zero: free');
  slot[bo.family!] = abi.AF_INET;
  t.notOk(abi.isFreeBackendSlot(slot), 'family set: a backend');
});
