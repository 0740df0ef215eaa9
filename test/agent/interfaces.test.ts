/**
 * The addresses the agent reads from its network namespace: what it tells
 * the data path are this node's own (local backends).
 */
import t from 'tap';
import { networkInterfaces } from 'node:os';
import { localAddresses } from '../../src/agent/interfaces.js';
import { canonicalAddress } from '../../src/model/cidr.js';

t.test('localAddresses: every address of every interface, loopback included, canonical, no link-local', async (t) => {
  const got = localAddresses();
  t.ok(got.includes('127.0.0.1'), 'loopback IPv4 is local');
  for (const a of got) {
    t.equal(canonicalAddress(a), a, `${a} is in canonical form`);
    t.notOk(a.startsWith('fe80:'), `${a} is not link-local`);
  }
  const all = Object.values(networkInterfaces()).flatMap((l) => l ?? []).filter((a) => !a.address.startsWith('fe80:'));
  t.equal(got.length, all.length, 'one entry per non-link-local address of the namespace');
});
