/**
 * RFC 5881 §5 on the receive side: a single-hop BFD packet must arrive with
 * TTL / hop limit 255, else it is discarded — a peer more than one hop away
 * (or a spoofer off the link) cannot hold a session up. Node's dgram sockets
 * report no TTL, so the receive sockets get a kernel socket filter from the
 * native addon. Real packets, IPv4 and IPv6, in a namespace of the test's
 * own; without the filter the TTL 64 packet is taken, which is what shows
 * the check is the filter's doing.
 */
import t from 'tap';
import { siblingModule, withLab } from '../../src/lab/netns.js';
import { privilegedUnavailable } from '../support/privileged.js';

interface Seen { state: string; received: number; discarded: number; ttlChecked: boolean }
interface Report { udp4: { ttl64: Seen; ttl255: Seen }; udp6: { ttl64: Seen; ttl255: Seen }; badTtl: number }

t.test('BFD packets with TTL 64 are discarded and counted; TTL 255 ones move the session', { skip: privilegedUnavailable() }, async (t) => {
  const lab = await withLab(t, 'phttl');
  await lab.addNamespace('n');
  // This kernel has no dummy module: one end of a veth pair holds the addresses.
  await lab.exec('n', ['ip', 'link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1']);
  await lab.exec('n', ['ip', 'link', 'set', 'd1', 'up']);
  await lab.exec('n', ['ip', 'link', 'set', 'd0', 'up']);
  await lab.exec('n', ['ip', 'addr', 'add', '192.0.2.1/24', 'dev', 'd0']);
  await lab.exec('n', ['ip', 'addr', 'add', '2001:db8::1/64', 'dev', 'd0', 'nodad']);
  const child = siblingModule(import.meta.url, 'support/bfd-ttl-child');
  const run = async (mode: 'filter' | 'none'): Promise<Report> => {
    const r = await lab.exec('n', [process.execPath, ...child, mode], { timeoutMs: 30_000 });
    t.equal(r.code, 0, `child (${mode}) exits 0: ${r.stderr.slice(-500)}`);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as Report;
  };

  const filtered = await run('filter');
  for (const kind of ['udp4', 'udp6'] as const) {
    const f = filtered[kind];
    t.same(f.ttl64, { state: 'Down', received: 0, discarded: 1, ttlChecked: true }, `${kind}: TTL 64 discarded, counted against the session`);
    t.equal(f.ttl255.state, 'Init', `${kind}: TTL 255 Down from the peer moves the session to Init`);
    t.equal(f.ttl255.received, 1);
    t.equal(f.ttl255.discarded, 1);
  }
  t.equal(filtered.badTtl, 2, 'one bad-TTL packet per family counted');

  const open = await run('none');
  for (const kind of ['udp4', 'udp6'] as const) {
    t.equal(open[kind].ttl64.ttlChecked, false, `${kind}: without the addon's filter the status says TTL is not checked`);
    t.equal(open[kind].ttl64.state, 'Init', `${kind}: without the filter a TTL 64 packet is taken (what the filter prevents)`);
  }
  t.equal(open.badTtl, 0);
});
