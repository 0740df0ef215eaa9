/**
 * SNAT sources per interface (src/datapath/snat.ts): each interface's own
 * address per family, the flag's node-wide and per-interface overrides,
 * and the errors that name the entry.
 */
import t from 'tap';
import { parseSnatOverride, planSnat } from '../../src/datapath/snat.js';

const front = { name: 'eth0', ifindex: 2, addresses: ['198.51.100.2', '2001:db8:1::2', '198.51.100.3'] };
const back = { name: 'eth1', ifindex: 3, addresses: ['203.0.113.1'] };
const bare = { name: 'eth2', ifindex: 4, addresses: [] };

t.test('by default each interface its own primary address per family', async (t) => {
  const p = planSnat([], [front, back, bare]);
  t.equal(p.nodeV4, '198.51.100.2', 'node-wide: the first address, for egress the agent does not know');
  t.equal(p.nodeV6, '2001:db8:1::2');
  t.same([...p.interfaces], [[2, { v4: '198.51.100.2', v6: '2001:db8:1::2' }], [3, { v4: '203.0.113.1' }]], 'eth1 has no v6: the node-wide one; eth2 none at all');
});

t.test('overrides: ADDR for every interface of its family, IFACE=ADDR for one', async (t) => {
  const everywhere = planSnat([parseSnatOverride('198.18.0.9')], [front, back]);
  t.equal(everywhere.nodeV4, '198.18.0.9');
  t.same([...everywhere.interfaces], [[2, { v6: '2001:db8:1::2' }]], 'v4 from the flag everywhere; v6 still per interface');
  const one = planSnat([parseSnatOverride('eth1=203.0.113.5')], [front, back]);
  t.same(one.interfaces.get(3), { v4: '203.0.113.5' });
  t.same(one.interfaces.get(2), { v4: '198.51.100.2', v6: '2001:db8:1::2' });
});

t.test('bad entries are named', async (t) => {
  t.throws(() => parseSnatOverride('eth1=nope'), /"eth1=nope": "nope" is not an IP address/);
  t.throws(() => parseSnatOverride('a b=198.51.100.1'), /is not an interface name/);
  t.same(parseSnatOverride('2001:db8::1'), { address: '2001:db8::1' });
});
