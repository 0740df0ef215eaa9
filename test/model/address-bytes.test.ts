/**
 * The one address-to-bytes encoder (model/cidr.ts) and the one MAC helper
 * (model/mac.ts) that BPF map keys, ARP/NA frames and BGP messages share:
 * random addresses of both families round-trip through bytes to their
 * canonical text, IPv4 sits in the first 4 bytes of a 16-byte map slot, and
 * bad input is refused with its text named.
 */
import t from 'tap';
import { addressBytes, canonicalAddress, formatAddressBytes, writeAddressBytes } from '../../src/model/cidr.js';
import { formatMac, macBytes } from '../../src/model/mac.js';
import { writeAddr } from '../../src/datapath/abi.js';
import { addressBytes as bgpAddressBytes } from '../../src/bgp/prefix.js';
import { solicitedNodeGroup } from '../../src/l2/ndp-groups.js';

function randomV6(rand: () => number): string {
  // Runs of zero groups now and then, so "::" compression is exercised.
  const groups = Array.from({ length: 8 }, () => (rand() < 0.3 ? 0 : Math.floor(rand() * 0x10000)));
  return groups.map((g) => g.toString(16)).join(':');
}

t.test('addresses round-trip through bytes, both families', async (t) => {
  let seed = 7;
  const rand = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let i = 0; i < 2000; i++) {
    const v4 = Array.from({ length: 4 }, () => Math.floor(rand() * 256)).join('.');
    const v6 = randomV6(rand);
    for (const text of [v4, v6]) {
      const bytes = addressBytes(text);
      if (formatAddressBytes(bytes) !== canonicalAddress(text)) t.fail(`${text}: ${bytes.toString('hex')}`);
      if (!bgpAddressBytes(text).equals(bytes)) t.fail(`BGP encodes ${text} differently`);
    }
  }
  t.same([...addressBytes('198.51.100.7')], [198, 51, 100, 7]);
  t.equal(addressBytes('2001:db8::7').toString('hex'), '20010db8000000000000000000000007');
  t.equal(addressBytes('::ffff:192.0.2.1').toString('hex'), '00000000000000000000ffffc0000201', 'embedded IPv4');
  t.equal(bgpAddressBytes('fe80::1%eth0').toString('hex'), 'fe800000000000000000000000000001', 'BGP ignores a zone suffix');
});

t.test('a 16-byte map slot: IPv4 first, the rest zeroed', async (t) => {
  const slot = Buffer.alloc(20, 0xaa);
  t.equal(writeAddr(slot, 2, '192.0.2.9'), 'IPv4');
  t.equal(slot.toString('hex'), `aaaa${'c0000209'}${'00'.repeat(12)}aaaa`);
  t.equal(writeAddressBytes(slot, 0, '2001:db8::1'), 'IPv6');
});

t.test('bad input is refused, naming it', async (t) => {
  for (const bad of ['198.51.100.256', '01.2.3.4', '2001:db8::1::2', 'fe80::1%eth0', 'example.com', '']) {
    t.throws(() => addressBytes(bad), { message: bad === '' ? /required/ : new RegExp(JSON.stringify(bad).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) }, bad);
  }
  t.throws(() => writeAddr(Buffer.alloc(16), 0, 'nope'), { name: 'Error', message: /nope/ }, 'the map encoder says which address');
});

t.test('MACs: both separators in, colons out; bad ones named', async (t) => {
  t.equal(macBytes('02:00:5e:10:00:01').toString('hex'), '02005e100001');
  t.equal(macBytes('02-00-5E-10-00-01').toString('hex'), '02005e100001');
  t.equal(formatMac(Buffer.from('02005e100001', 'hex')), '02:00:5e:10:00:01');
  t.equal(formatMac(Buffer.from('ffff02005e100001', 'hex'), 2), '02:00:5e:10:00:01', 'at an offset');
  for (const bad of ['02:00:5e:10:00', '02:00:5e:10:00:01:02', 'zz:00:5e:10:00:01', '']) t.throws(() => macBytes(bad), { message: /is not a MAC address/ }, bad);
});

t.test('solicited-node groups from the same parser', async (t) => {
  t.equal(solicitedNodeGroup('2001:db8::1:2:3'), 'ff02::1:ff02:3');
  t.equal(solicitedNodeGroup('2001:db8::abcd:ef12'), 'ff02::1:ffcd:ef12');
  t.throws(() => solicitedNodeGroup('198.51.100.1'), /not an IPv6 address/);
});
