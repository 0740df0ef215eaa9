/**
 * Native addon, interface side, on a veth pair between two namespaces this
 * file creates (phn-a/phn0 <-> phn-b/phn1): ifIndex in a netns, XDP
 * attach/query/detach (native, generic, auto), tc clsact, AF_PACKET send and
 * a live-frames test run, each checked by counters of a program on the far
 * side.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync, readlinkSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { countReaches } from '../support/wait.js';
import { addon, type BpfObject } from '../../src/native/libbpf.js';
import { privilegedUnavailable } from '../support/privileged.js';
import { bpfErrorOf } from './bpf-error.js';
import { compileTestObject, testFrame } from './test-object.js';

const skip = privilegedUnavailable();
const NS_A = 'phn-a';
const NS_B = 'phn-b';
const A = `/run/netns/${NS_A}`;
const B = `/run/netns/${NS_B}`;
const XDP_TX = 3;

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
}

function removeNamespaces(): void {
  const present = run('ip', ['netns', 'list']).split('\n').map((l) => l.split(' ')[0]);
  for (const ns of [NS_A, NS_B]) if (present.includes(ns)) run('ip', ['netns', 'del', ns]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

function counter(o: BpfObject, map: string, ethertype: number): number {
  const v = o.map(map).lookup(u32(ethertype));
  return v ? Number(v.readBigUInt64LE()) : 0;
}

const compiled = skip ? undefined : compileTestObject();
const hostNetns = readlinkSync('/proc/thread-self/ns/net');
let ifA = 0;
let ifB = 0;

if (!skip) {
  removeNamespaces();
  run('ip', ['netns', 'add', NS_A]);
  run('ip', ['netns', 'add', NS_B]);
  run('ip', ['link', 'add', 'phn0', 'netns', NS_A, 'type', 'veth', 'peer', 'name', 'phn1', 'netns', NS_B]);
  run('ip', ['-n', NS_A, 'link', 'set', 'phn0', 'up']);
  run('ip', ['-n', NS_B, 'link', 'set', 'phn1', 'up']);
  ifA = addon().ifIndex('phn0', A);
  ifB = addon().ifIndex('phn1', B);
}
t.teardown(() => {
  compiled?.cleanup();
  if (!skip) removeNamespaces();
});

/** A loaded test object with `verdict` set, closed at teardown. */
function testObject(t: { teardown: (fn: () => void) => void }, verdict?: number): BpfObject {
  const o = addon().openObject(compiled!.path);
  t.teardown(() => o.close());
  if (verdict !== undefined) o.setRodata('verdict', u32(verdict));
  o.load();
  return o;
}

t.test('ifIndex looks up inside a netns; unknown names are named in the error', { skip }, async (t) => {
  const fromIp = JSON.parse(run('ip', ['-n', NS_A, '-j', 'link', 'show', 'phn0']))[0].ifindex;
  t.equal(ifA, fromIp, 'same index as ip link');
  t.equal(addon().ifIndex('lo', B), 1);
  let e = bpfErrorOf(() => addon().ifIndex('phn0'));
  t.equal(e.code, 'ENODEV', 'phn0 is not in the host namespace');
  t.match(e.message, "interface 'phn0'");
  e = bpfErrorOf(() => addon().ifIndex('phn-nope', A));
  t.equal(e.code, 'ENODEV');
  t.match(e.message, `interface 'phn-nope' in netns ${A}`);
  e = bpfErrorOf(() => addon().ifIndex('lo', '/run/netns/phn-missing'));
  t.equal(e.code, 'ENOENT');
  t.match(e.message, '/run/netns/phn-missing');
  t.equal(readlinkSync('/proc/thread-self/ns/net'), hostNetns, 'back in the host netns');
});

t.test('XDP attach, query and detach: native, generic and auto', { skip }, async (t) => {
  const prog = testObject(t).program('xdp_test');
  t.equal(addon().xdpQuery(ifA, A).mode, 'none');
  t.equal(addon().xdpAttach(ifA, prog.fd, 'native', A), 'native');
  t.same(addon().xdpQuery(ifA, A), { progId: prog.id, mode: 'native' });
  t.match(run('ip', ['-n', NS_A, 'link', 'show', 'phn0']), `prog/xdp id ${prog.id}`, 'ip link agrees');
  t.equal(addon().xdpAttach(ifA, prog.fd, 'native', A), 'native', 'attaching again replaces');
  addon().xdpDetach(ifA, A);
  t.same(addon().xdpQuery(ifA, A), { progId: 0, mode: 'none' });
  addon().xdpDetach(ifA, A);
  t.pass('detaching when nothing is attached is fine');

  t.equal(addon().xdpAttach(ifA, prog.fd, 'generic', A), 'generic');
  t.same(addon().xdpQuery(ifA, A), { progId: prog.id, mode: 'generic' });
  t.match(run('ip', ['-n', NS_A, 'link', 'show', 'phn0']), 'xdpgeneric');
  addon().xdpDetach(ifA, A);
  t.equal(addon().xdpQuery(ifA, A).mode, 'none', 'generic program detached');

  const mode = addon().xdpAttach(ifA, prog.fd, 'auto', A);
  t.comment(`auto mode on veth: ${mode}`);
  t.equal(mode, 'native', 'auto picks native on veth');
  addon().xdpDetach(ifA, A);

  let e = bpfErrorOf(() => addon().xdpAttach(999_999, prog.fd, 'auto', A));
  t.equal(e.code, 'ENODEV');
  t.match(e.message, 'XDP attach to ifindex 999999');
  e = bpfErrorOf(() => addon().xdpAttach(ifA, prog.fd, 'fast' as 'native', A));
  t.match(e.message, "mode must be 'native', 'generic' or 'auto'");
  e = bpfErrorOf(() => addon().xdpQuery(999_999, A));
  t.equal(e.code, 'ENODEV');
});

t.test('tc clsact: attach counts frames, detach stops it', { skip }, async (t) => {
  const egress = testObject(t);
  const ingress = testObject(t);
  addon().tcAttach(ifA, 'egress', egress.program('tc_test').fd, { netns: A });
  addon().tcAttach(ifB, 'ingress', ingress.program('tc_test').fd, { netns: B, handle: 7, priority: 3 });
  addon().tcAttach(ifB, 'ingress', ingress.program('tc_test').fd, { netns: B, handle: 7, priority: 3 });
  t.pass('attaching twice (existing clsact, same handle) replaces');
  // tcQuery: the program in a (handle, priority) slot, as `tc filter show` reads it (the attach watch uses this).
  const progIdOf = (fd: number): number => Number(/prog_id:\s*(\d+)/.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1]);
  t.equal(addon().tcQuery(ifB, 'ingress', { netns: B, handle: 7, priority: 3 }), progIdOf(ingress.program('tc_test').fd), 'tcQuery: the attached program');
  t.equal(addon().tcQuery(ifB, 'ingress', { netns: B }), 0, 'tcQuery: another slot (handle 1, priority 1) is empty');
  t.equal(addon().tcQuery(ifA, 'egress', { netns: A }), progIdOf(egress.program('tc_test').fd), 'tcQuery: default slot');
  t.equal(addon().tcQuery(ifB, 'egress', { netns: B }), 0, 'tcQuery: a direction with no filter');
  const filters = run('tc', ['-n', NS_B, 'filter', 'show', 'dev', 'phn1', 'ingress']);
  t.match(filters, /tc_test.*direct-action/);
  t.match(filters, 'handle 0x7');
  t.match(filters, 'pref 3');

  for (let i = 0; i < 3; i++) addon().sendFrame(ifA, testFrame(0x88b6), A);
  t.equal(await countReaches(() => counter(ingress, 'tc_seen', 0x88b6), 3), 3, 'ingress on the peer saw 3');
  t.equal(counter(egress, 'tc_seen', 0x88b6), 3, 'egress on the sender saw 3');

  addon().tcDetach(ifA, 'egress', { netns: A });
  addon().tcDetach(ifB, 'ingress', { netns: B, handle: 7, priority: 3 });
  addon().tcDetach(ifB, 'ingress', { netns: B, handle: 7, priority: 3 });
  t.pass('detaching an absent filter is fine');
  t.equal(run('tc', ['-n', NS_B, 'filter', 'show', 'dev', 'phn1', 'ingress']).trim(), '', 'no filter left');
  t.equal(addon().tcQuery(ifB, 'ingress', { netns: B, handle: 7, priority: 3 }), 0, 'tcQuery after detach: none');
  addon().sendFrame(ifA, testFrame(0x88b6), A);
  await sleep(100);
  t.equal(counter(ingress, 'tc_seen', 0x88b6), 3, 'no more counting after detach');
  t.equal(counter(egress, 'tc_seen', 0x88b6), 3);

  const e = bpfErrorOf(() => addon().tcAttach(ifA, 'sideways' as 'ingress', egress.program('tc_test').fd, { netns: A }));
  t.match(e.message, "direction must be 'ingress' or 'egress'");
  t.ok(bpfErrorOf(() => addon().tcAttach(999_999, 'ingress', egress.program('tc_test').fd, { netns: A })).errno > 0,
    'unknown ifindex');
  const notAProgram = egress.map('tc_seen');
  const wrongFd = bpfErrorOf(() => addon().tcAttach(ifA, 'ingress', notAProgram.fd, { netns: A }));
  t.match(wrongFd.message, `tc attach on ingress of ifindex ${ifA} (phn0) in netns ${A}`, 'names the interface in its netns');
});

t.test('sendFrame: one raw frame arrives at the peer (seen by its native XDP program)', { skip }, async (t) => {
  const peer = testObject(t);
  t.equal(addon().xdpAttach(ifB, peer.program('xdp_test').fd, 'native', B), 'native');
  t.teardown(() => addon().xdpDetach(ifB, B));
  addon().sendFrame(ifA, testFrame(0x88b5, 42), A);
  t.equal(await countReaches(() => counter(peer, 'xdp_seen', 0x88b5), 1), 1, 'peer saw the frame');
  for (let i = 0; i < 4; i++) addon().sendFrame(ifA, testFrame(0x88b5), A);
  t.equal(await countReaches(() => counter(peer, 'xdp_seen', 0x88b5), 5), 5, 'and four more');
  let e = bpfErrorOf(() => addon().sendFrame(ifA, Buffer.alloc(10), A));
  t.match(e.message, 'frame is 10 bytes');
  e = bpfErrorOf(() => addon().sendFrame(999_999, testFrame(0x88b5), A));
  t.ok(['ENXIO', 'ENODEV'].includes(e.code), `unknown ifindex: ${e.code}`);
  t.equal(readlinkSync('/proc/thread-self/ns/net'), hostNetns, 'back in the host netns');
});

/**
 * Some sandboxes refuse BPF_F_TEST_XDP_LIVE_FRAMES outright (EPERM on every
 * call, while the same test run without the flag works: seen on a VM of
 * this workplace on 2026-12-08, kernel 6.18). Then there is nothing to test here, and the
 * subtest says why it is skipped instead of failing on the machine.
 */
function liveFramesRefused(): string | false {
  if (skip) return false;
  const probe = addon().openObject(compiled!.path);
  try {
    probe.load();
    const ctx = Buffer.alloc(24);
    ctx.writeUInt32LE(testFrame(0x88b8).length, 4);
    ctx.writeUInt32LE(ifA, 12);
    addon().testRun(probe.program('xdp_test').fd, { data: testFrame(0x88b8), repeat: 1, flags: 2, ctxIn: ctx, netns: A });
    return false;
  } catch (e) {
    if ((e as { code?: string }).code === 'EPERM') return `this kernel refuses live-frames test runs here (EPERM): ${(e as Error).message}`;
    throw e;
  } finally {
    probe.close();
  }
}

t.test('live-frames test run (async, in a netns) transmits frames the peer receives', { skip: skip || liveFramesRefused() }, async (t) => {
  const peer = testObject(t);
  const generator = testObject(t, XDP_TX);
  t.equal(addon().xdpAttach(ifB, peer.program('xdp_test').fd, 'native', B), 'native');
  t.teardown(() => addon().xdpDetach(ifB, B));
  const frame = testFrame(0x88b7);
  // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
  const ctx = Buffer.alloc(24);
  ctx.writeUInt32LE(frame.length, 4);
  ctx.writeUInt32LE(ifA, 12);
  const result = await addon().testRunAsync(generator.program('xdp_test').fd, {
    data: frame, repeat: 50, flags: 2, ctxIn: ctx, netns: A,
  });
  t.equal(result.dataOut.length, 0, 'live frames return no data');
  t.equal(await countReaches(() => counter(peer, 'xdp_seen', 0x88b7), 50), 50, 'the peer received all 50');
  t.equal(counter(generator, 'xdp_seen', 0x88b7), 50, 'the generator ran 50 times');
  t.equal(readlinkSync('/proc/thread-self/ns/net'), hostNetns, 'the JS thread never left the host netns');

  // An open-ended generator: stopped by an AbortSignal, not by its repeat count.
  const stopped = await addon().testRunAsync(generator.program('xdp_test').fd, {
    data: frame, repeat: 2 ** 31 - 1, flags: 2, ctxIn: ctx, netns: A, signal: AbortSignal.timeout(200),
  });
  t.equal(stopped.interrupted, true, 'generator stopped by the signal');
  const sent = counter(generator, 'xdp_seen', 0x88b7) - 50;
  t.ok(sent > 0 && sent < 2 ** 31 - 1, `${sent} frames generated in ~200 ms`);
  t.ok(await countReaches(() => counter(peer, 'xdp_seen', 0x88b7), 50 + sent) > 50, 'the peer received them');
  const e = bpfErrorOf(() => addon().testRun(generator.program('xdp_test').fd, {
    data: frame, repeat: 1, flags: 2, ctxIn: ctx, netns: '/run/netns/phn-missing',
  }));
  t.match(e.message, 'netns: cannot open /run/netns/phn-missing');
});
