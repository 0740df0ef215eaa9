import t from 'tap';
import { announcementFrames, gratuitousArp, unsolicitedNeighborAdvert } from '../../src/l2/frames.js';
import { L2Announcer, type L2Interface } from '../../src/l2/announcer.js';

const eth0: L2Interface = { name: 'eth0', ifindex: 2, mac: '02:00:00:00:00:01' };
const eth1: L2Interface = { name: 'eth1', ifindex: 3, mac: '02:00:00:00:00:02' };

function csum(buf: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < buf.length; i += 2) sum += buf.readUInt16BE(i);
  if (buf.length % 2) sum += buf[buf.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

t.test('gratuitous ARP request and reply', async (t) => {
  const req = gratuitousArp(eth0.mac, '198.51.100.10', 1);
  t.equal(req.length, 42);
  t.equal(req.subarray(0, 6).toString('hex'), 'ffffffffffff');
  t.equal(req.readUInt16BE(12), 0x0806);
  t.equal(req.readUInt16BE(20), 1);
  t.equal(req.subarray(28, 32).toString('hex'), 'c633640a', 'sender IP = VIP');
  t.equal(req.subarray(38, 42).toString('hex'), 'c633640a', 'target IP = VIP (gratuitous)');
  const rep = gratuitousArp(eth0.mac, '198.51.100.10', 2);
  t.equal(rep.readUInt16BE(20), 2);
  t.throws(() => gratuitousArp('zz', '198.51.100.10', 1), /not a MAC/);
  t.throws(() => gratuitousArp(eth0.mac, '198.51.100', 1), /not an IPv4/);
});

t.test('unsolicited NA: override flag, hop limit 255, valid checksum', async (t) => {
  const na = unsolicitedNeighborAdvert(eth0.mac, '2001:db8::10');
  t.equal(na.readUInt16BE(12), 0x86dd);
  t.equal(na[21], 255);
  t.equal(na[54], 136);
  t.equal(na.readUInt32BE(58), 0x20000000, 'O=1, S=0, R=0');
  // Checksum over pseudo-header + ICMPv6 body sums to 0xffff when valid.
  const pseudo = Buffer.concat([na.subarray(22, 54), Buffer.from([0, 0, 0, 32, 0, 0, 0, 58])]);
  t.equal(csum(Buffer.concat([pseudo, na.subarray(54)])), 0xffff);
  t.equal(announcementFrames(eth0.mac, '2001:db8::10').length, 1);
  t.equal(announcementFrames(eth0.mac, '192.0.2.1').length, 2);
});

t.test('announcer programs, repeats and withdraws', async (t) => {
  const ops: string[] = [];
  const sent: string[] = [];
  const a = new L2Announcer({
    addResponder: (addr, i) => ops.push(`add ${addr}@${i.name}`),
    removeResponder: (addr, i) => ops.push(`del ${addr}@${i.name}`),
    sendFrame: (i, f) => sent.push(`${i.name}:${f.length}`),
  }, { repeatIntervalMs: 20, repeatForMs: 60 });
  a.update([{ service: 'default/echo', address: '198.51.100.10', interfaces: [eth0, eth1] }]);
  t.same(ops, ['add 198.51.100.10@eth0', 'add 198.51.100.10@eth1']);
  t.equal(sent.length, 4, 'request + reply on two interfaces at once');
  await new Promise((r) => setTimeout(r, 150));
  t.equal(sent.length, 4 * 4, 'initial round plus three repeats (60 ms / 20 ms)');
  a.update([{ service: 'default/echo', address: '198.51.100.10', interfaces: [eth0] }]);
  t.same(ops.slice(2), ['del 198.51.100.10@eth1']);
  t.equal(a.heldAddresses().length, 1);
  a.stop();
  t.same(ops.slice(3), ['del 198.51.100.10@eth0']);
});

t.test('a failing sink is reported, not thrown', async (t) => {
  const errors: string[] = [];
  const a = new L2Announcer({
    addResponder: () => { throw new Error('map full'); },
    removeResponder: () => {},
    sendFrame: () => { throw new Error('ENETDOWN'); },
  }, { repeatForMs: 0, onError: (e, addr, ifn) => errors.push(`${addr}@${ifn}: ${e.message}`) });
  a.update([{ service: 's', address: '2001:db8::1', interfaces: [eth0] }]);
  t.same(errors, ['2001:db8::1@eth0: map full', '2001:db8::1@eth0: ENETDOWN']);
  a.stop();
});
