/**
 * The benchmark's traffic generator (bench/bpf/gen.bpf.c) writes frames the
 * whole chain accepts: run through BPF_PROG_TEST_RUN (plain, not live), every
 * output frame must be a valid 60-byte Ethernet/IPv4/UDP frame with correct
 * checksums, whatever bytes the recycled page held before, and the flow
 * selection must give one, 65,000 cycling, or always-new 5-tuples.
 */
import t, { type Test } from 'tap';
import { privilegedUnavailable } from '../support/privileged.js';
import { inetChecksum, ipv4String, macString } from '../../src/lab/packet.js';
import { addon } from '../../src/native/libbpf.js';
import { benchObject, Generator, CYCLE_FLOWS, CYCLE_PORTS_PER_ADDR, FRAME_LEN, PORT, SRC_BASE, VIP, type Flows } from '../../bench/datapath.js';

const skip = privilegedUnavailable();
const DMAC = '02:70:68:00:00:02';
const SMAC = '02:70:68:00:00:01';
const XDP_TX = 3;

interface Frame { src: string; sport: number; bytes: Buffer }

function openGenerator(t: Test): Generator {
  const obj = addon().openObject(benchObject('gen'));
  t.teardown(() => obj.close());
  obj.load();
  return new Generator(addon(), obj);
}

/** One run of the generator over `input` (the page's previous content); checks the frame and returns its flow. */
function frame(t: Test, gen: Generator, input: Buffer): Frame {
  const res = addon().testRun(gen.fd, { data: input, repeat: 1 });
  t.equal(res.retval, XDP_TX, 'XDP_TX');
  const f = res.dataOut;
  t.equal(f.length, FRAME_LEN);
  t.equal(macString(f.subarray(0, 6)), DMAC);
  t.equal(macString(f.subarray(6, 12)), SMAC);
  t.equal(f.readUInt16BE(12), 0x0800);
  const ip = f.subarray(14, 34);
  t.equal(ip[0], 0x45, 'IPv4, IHL 5');
  t.equal(ip.readUInt16BE(2), FRAME_LEN - 14, 'IPv4 total length');
  t.equal(ip.readUInt16BE(6), 0, 'no fragment bits');
  t.equal(ip[9], 17, 'UDP');
  t.equal(inetChecksum(ip), 0, 'IPv4 header checksum');
  t.equal(ipv4String(ip.subarray(16, 20)), VIP);
  const udp = f.subarray(34);
  t.equal(udp.readUInt16BE(2), PORT);
  t.equal(udp.readUInt16BE(4), udp.length, 'UDP length');
  t.not(udp.readUInt16BE(6), 0, 'UDP checksum present');
  const pseudo = Buffer.concat([ip.subarray(12, 20), Buffer.from([0, 17]), Buffer.from([udp.length >> 8, udp.length & 0xff])]);
  t.equal(inetChecksum(pseudo, udp), 0, 'UDP checksum over the pseudo-header');
  return { src: ipv4String(ip.subarray(12, 16)), sport: udp.readUInt16BE(0), bytes: Buffer.from(f) };
}

function flowsOf(t: Test, gen: Generator, flows: Flows, n: number, seqStart: number): Frame[] {
  gen.configure(flows, { dmac: DMAC, smac: SMAC, seqStart });
  const out: Frame[] = [];
  for (let i = 0; i < n; i++) out.push(frame(t, gen, Buffer.alloc(FRAME_LEN)));
  return out;
}

t.test('every byte is rewritten: a page full of stale bytes gives the same frame as a clean one', { skip }, async (t) => {
  const gen = openGenerator(t);
  gen.configure('1', { dmac: DMAC, smac: SMAC, seqStart: 7 });
  const clean = frame(t, gen, Buffer.alloc(FRAME_LEN));
  gen.configure('1', { dmac: DMAC, smac: SMAC, seqStart: 7 });
  const stale = frame(t, gen, Buffer.alloc(FRAME_LEN, 0xa5));
  t.same(stale.bytes, clean.bytes);
  t.equal(clean.src, SRC_BASE);
});

t.test('flows "1": one 5-tuple', { skip }, async (t) => {
  const gen = openGenerator(t);
  const frames = flowsOf(t, gen, '1', 20, 0);
  t.equal(new Set(frames.map((f) => `${f.src}:${f.sport}`)).size, 1);
});

t.test('flows "65000": consecutive frames differ, the cycle repeats after 65,000', { skip }, async (t) => {
  const gen = openGenerator(t);
  const first = flowsOf(t, gen, '65000', 3, 0);
  t.equal(new Set(first.map((f) => `${f.src}:${f.sport}`)).size, 3);
  const wrapped = flowsOf(t, gen, '65000', 1, CYCLE_FLOWS)[0]!;
  t.equal(`${wrapped.src}:${wrapped.sport}`, `${first[0]!.src}:${first[0]!.sport}`, 'sequence 65,000 = sequence 0');
  const next = flowsOf(t, gen, '65000', 1, CYCLE_PORTS_PER_ADDR)[0]!;
  t.not(next.src, first[0]!.src, 'after the ports of one address, the next source address');
});

t.test('flows "new": no 5-tuple twice, also across a source-address step', { skip }, async (t) => {
  const gen = openGenerator(t);
  const frames = flowsOf(t, gen, 'new', 50, 64_000 - 25);
  t.equal(new Set(frames.map((f) => `${f.src}:${f.sport}`)).size, 50);
  t.equal(new Set(frames.map((f) => f.src)).size, 2, 'the source address moved on after 64,000 ports');
});
