/**
 * Kept packet sockets (packetSocket): frames sent through one socket, one by
 * one and with sendMany, arrive at the peer of a veth between two namespaces
 * this file creates (counted per ethertype by a native XDP program there);
 * errors name the interface. Also measures the cost per frame against the
 * one-socket-per-frame sendFrame and prints it.
 */
import t from 'tap';
import { addon, type BpfObject } from '../../src/native/libbpf.js';
import { withLab, type Lab, type TeardownHost } from '../support/lab.js';
import { privilegedUnavailable } from '../support/privileged.js';
import { countReaches, sleep } from '../support/wait.js';
import { bpfErrorOf } from './bpf-error.js';
import { compileTestObject, testFrame } from './test-object.js';

const skip = privilegedUnavailable();
// Ethertypes from the IEEE local experimental range, one per test.
const ONE_BY_ONE = 0x88b5;
const MANY = 0x88b6;
const BENCH = 0x88b7;

interface Pair {
  lab: Lab;
  sender: string;
  ifindex: number;
  /** Frames the peer's XDP program has seen with this ethertype. */
  seen(ethertype: number): number;
}

async function veth(t: TeardownHost): Promise<Pair> {
  const lab = await withLab(t, 'phxp');
  await lab.addNamespace('a');
  await lab.addNamespace('b');
  await lab.addLink({ ns: 'a', ifname: 'phxp0' }, { ns: 'b', ifname: 'phxp1' });
  const compiled = compileTestObject();
  t.teardown(() => compiled.cleanup());
  const peer: BpfObject = addon().openObject(compiled.path);
  t.teardown(() => peer.close());
  peer.load();
  const peerIf = await lab.ifIndex('b', 'phxp1');
  addon().xdpAttach(peerIf, peer.program('xdp_test').fd, 'native', lab.nsPath('b'));
  const key = Buffer.alloc(4);
  return {
    lab,
    sender: lab.nsPath('a'),
    ifindex: await lab.ifIndex('a', 'phxp0'),
    seen: (ethertype) => {
      key.writeUInt32LE(ethertype);
      const v = peer.map('xdp_seen').lookup(key);
      return v ? Number(v.readBigUInt64LE()) : 0;
    },
  };
}

t.test('a kept socket sends frame after frame, and many at once', { skip }, async (t) => {
  const pair = await veth(t);
  const socket = addon().packetSocket(pair.ifindex, pair.sender);
  t.teardown(() => socket.close());
  t.equal(socket.ifindex, pair.ifindex);

  for (let i = 0; i < 5; i++) socket.send(testFrame(ONE_BY_ONE));
  t.equal(await countReaches(() => pair.seen(ONE_BY_ONE), 5), 5, 'the peer saw the 5 frames sent one by one');

  const frames = Array.from({ length: 300 }, (_, i) => testFrame(MANY, 60 + (i % 40)));
  t.equal(socket.sendMany(frames), 300, 'sendMany reports all 300 sent');
  t.equal(await countReaches(() => pair.seen(MANY), 300), 300, 'the peer saw all 300');
  t.equal(socket.sendMany([]), 0, 'nothing to send, nothing sent');
  await sleep(100);
  t.equal(pair.seen(ONE_BY_ONE) + pair.seen(MANY), 305, 'nothing more arrived');

  // Frames coming the other way are never queued on it (protocol 0: no receive hook).
  const back = addon().packetSocket(await pair.lab.ifIndex('b', 'phxp1'), pair.lab.nsPath('b'));
  t.teardown(() => back.close());
  t.equal(back.sendMany(Array.from({ length: 50 }, () => testFrame(ONE_BY_ONE))), 50);
  const table = (await pair.lab.exec('a', ['cat', '/proc/net/packet'])).stdout;
  const rows = table.trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/));
  const ours = rows.filter((r) => r[4] === String(pair.ifindex));
  t.equal(ours.length, 1, 'one packet socket on the sender interface');
  t.match(ours[0], { 3: '0000', 5: '0', 6: '0' }, 'protocol 0, not running, nothing queued (/proc/net/packet)');
});

t.test('errors name the interface; a closed socket says so', { skip }, async (t) => {
  const pair = await veth(t);
  let e = bpfErrorOf(() => addon().packetSocket(999_999, pair.sender));
  t.equal(e.code, 'ENODEV', 'unknown ifindex');
  t.match(e.message, `packet socket on ifindex 999999 in netns ${pair.sender}: bind`);
  e = bpfErrorOf(() => addon().packetSocket(pair.ifindex, '/run/netns/phxp-missing'));
  t.equal(e.code, 'ENOENT');
  t.match(e.message, '/run/netns/phxp-missing');

  const socket = addon().packetSocket(pair.ifindex, pair.sender);
  const label = `packet socket on ifindex ${pair.ifindex} (phxp0) in netns ${pair.sender}`;
  e = bpfErrorOf(() => socket.send(Buffer.alloc(10)));
  t.equal(e.code, 'EINVAL');
  t.match(e.message, `${label}: send: frame is 10 bytes`);
  e = bpfErrorOf(() => socket.sendMany([testFrame(MANY), Buffer.alloc(13)]));
  t.match(e.message, `${label}: sendMany: frames[1] is 13 bytes`, 'a short frame is named by its index');
  e = bpfErrorOf(() => socket.sendMany([testFrame(MANY), 'frame' as unknown as Buffer]));
  t.match(e.message, 'sendMany: frames[1] must be a Buffer');
  await sleep(100);
  t.equal(pair.seen(MANY), 0, 'a refused batch sends none of its frames');

  socket.close();
  socket.close();
  t.pass('close is idempotent');
  e = bpfErrorOf(() => socket.send(testFrame(ONE_BY_ONE)));
  t.equal(e.code, 'EBADF');
  t.equal(e.message, `${label} is closed`);
  t.equal(bpfErrorOf(() => socket.sendMany([testFrame(ONE_BY_ONE)])).code, 'EBADF');
  t.equal(socket.ifindex, pair.ifindex, 'still says which interface it was for');
});

t.test('an interface going down or away makes sends fail, naming it', { skip }, async (t) => {
  const pair = await veth(t);
  await pair.lab.addLink({ ns: 'a', ifname: 'phxp2' }, { ns: 'b', ifname: 'phxp3' });
  const ifindex = await pair.lab.ifIndex('a', 'phxp2');
  const socket = addon().packetSocket(ifindex, pair.sender);
  t.teardown(() => socket.close());
  socket.send(testFrame(ONE_BY_ONE));
  await pair.lab.exec('a', ['ip', 'link', 'set', 'phxp2', 'down']);
  let e = bpfErrorOf(() => socket.send(testFrame(ONE_BY_ONE)));
  t.equal(e.code, 'ENETDOWN');
  t.match(e.message, `packet socket on ifindex ${ifindex} (phxp2) in netns ${pair.sender}: send`);
  e = bpfErrorOf(() => socket.sendMany([testFrame(ONE_BY_ONE), testFrame(ONE_BY_ONE)]));
  t.equal(e.code, 'ENETDOWN', 'sendMany: not even the first frame went out');
  t.match(e.message, 'sendMany: frame 0 of 2');
  await pair.lab.exec('a', ['ip', 'link', 'del', 'phxp2']);
  e = bpfErrorOf(() => socket.send(testFrame(ONE_BY_ONE)));
  t.equal(e.code, 'ENXIO', 'a deleted interface: the owner should open a new socket');
  t.match(e.message, `ifindex ${ifindex} (phxp2)`);
});

t.test('cost per frame: socket per frame vs kept socket (send and sendMany)', { skip }, async (t) => {
  const pair = await veth(t);
  const frame = testFrame(BENCH);
  const perFrameCount = 40;
  const keptCount = 5000;

  let start = process.hrtime.bigint();
  for (let i = 0; i < perFrameCount; i++) addon().sendFrame(pair.ifindex, frame, pair.sender);
  const perFrameUs = Number(process.hrtime.bigint() - start) / 1000 / perFrameCount;

  const socket = addon().packetSocket(pair.ifindex, pair.sender);
  t.teardown(() => socket.close());
  start = process.hrtime.bigint();
  for (let i = 0; i < keptCount; i++) socket.send(frame);
  const keptUs = Number(process.hrtime.bigint() - start) / 1000 / keptCount;

  const batch = Array.from({ length: keptCount }, () => frame);
  start = process.hrtime.bigint();
  const sent = socket.sendMany(batch);
  const manyUs = Number(process.hrtime.bigint() - start) / 1000 / keptCount;
  t.equal(sent, keptCount, 'sendMany sent the whole batch');

  const total = perFrameCount + 2 * keptCount;
  t.equal(await countReaches(() => pair.seen(BENCH), total, 5000), total, `the peer saw all ${total} frames`);
  const rate = (us: number): string => `${us.toFixed(1)} µs/frame (${Math.round(1e6 / us)} frames/s)`;
  t.comment(`socket per frame (sendFrame): ${rate(perFrameUs)}`);
  t.comment(`kept socket, send:            ${rate(keptUs)}`);
  t.comment(`kept socket, sendMany:        ${rate(manyUs)}`);
  t.ok(keptUs * 10 < perFrameUs, 'a kept socket is at least 10x cheaper per frame');
  t.ok(manyUs < 200, 'sendMany stays well under 200 µs per frame');
});
