/**
 * The outage rules as a pure function (src/l2/outage-core.ts), table-driven,
 * plus a property over random partitions: however heartbeats and claims
 * fall, once every node hears every other, no address is answered by two.
 * And the heartbeat codec (src/l2/peers.ts).
 */
import t from 'tap';
import { compareClaims, compareRv, decideHold, type Claim, type HoldInput, type PeerView } from '../../src/l2/outage-core.js';
import { addressLeaseName } from '../../src/l2/election-core.js';
import { decodeHeartbeat, encodeHeartbeat, PeerTable, CLAIMS_PER_DATAGRAM } from '../../src/l2/peers.js';

const A = '198.51.100.200';
const B = '198.51.100.201';
const TIMEOUT = 1000;

function claim(rv: string, takeovers = 0): Claim {
  return { rv, takeovers };
}

function peer(lastHeard: number, claims: [string, Claim][] = [], apiReachable = false): PeerView {
  return { lastHeard, apiReachable, claims: new Map(claims) };
}

function input(over: Partial<HoldInput>): HoldInput {
  return {
    now: 10_000, me: 'n1', apiReachable: false, outageSince: 5000,
    electionAnnounce: new Map(), held: new Map(), takenOver: new Map(),
    candidates: new Set([A, B]),
    leases: new Map([[A, { holder: 'n1', rv: '10', lease: addressLeaseName(A) }], [B, { holder: 'n2', rv: '11', lease: addressLeaseName(B) }]]),
    eligible: new Map([[A, ['n1', 'n2', 'n3']], [B, ['n1', 'n2', 'n3']]]),
    peers: new Map(), peerTimeoutMs: TIMEOUT, foreign: new Map(),
    ...over,
  };
}

t.test('claims rank by lease record, then outage takeovers, then node name; resourceVersions compare as numbers', async (t) => {
  t.ok(compareRv('9', '10') < 0, '9 < 10 (not as text)');
  t.ok(compareRv('abc', 'abd') < 0);
  t.ok(compareClaims(claim('12'), 'n1', claim('11', 3), 'n2') > 0, 'a later record beats takeovers on an older one');
  t.ok(compareClaims(claim('11', 1), 'n1', claim('11'), 'n2') > 0, 'a takeover beats the record it rests on');
  t.ok(compareClaims(claim('11'), 'n1', claim('11'), 'n2') > 0 !== compareClaims(claim('11'), 'n2', claim('11'), 'n1') > 0, 'a tie is broken one way');
});

const cases: { name: string; in: Partial<HoldInput>; announce: string[]; fenced?: Record<string, string>; takeovers?: string[] }[] = [
  {
    name: 'API down everywhere, nothing seen: the holder keeps answering what it held',
    in: { held: new Map([[A, claim('10')]]), peers: new Map([['n2', peer(9900, [[B, claim('11')]])]]) },
    announce: [A],
  },
  {
    name: 'API down, held but no longer a candidate (interface down): not answered',
    in: { held: new Map([[A, claim('10')]]), candidates: new Set([B]), peers: new Map([['n2', peer(9900, [[B, claim('11')]])]]) },
    announce: [],
  },
  {
    name: 'API down, another MAC answered for it since the outage began: fenced',
    in: { held: new Map([[A, claim('10')]]), foreign: new Map([[A, { at: 6000, mac: '02:00:00:00:00:02' }]]) },
    announce: [], fenced: { [A]: 'foreign-answer' },
  },
  {
    name: 'API down, the foreign answer is a live peer\'s (a partition healed, its GARP repeats): claims decide, mine is better',
    in: {
      held: new Map([[A, claim('10', 1)]]), foreign: new Map([[A, { at: 9000, mac: '02:00:00:00:00:02' }]]),
      peers: new Map([['n2', { ...peer(9950, [[A, claim('10')]]), macs: ['02:00:00:00:00:02'] }]]),
    },
    announce: [A],
  },
  {
    name: 'API down, the foreign answer is a known peer\'s whose heartbeat is not back yet: wait for it (a peer timeout)',
    in: {
      held: new Map([[A, claim('10', 1)]]), foreign: new Map([[A, { at: 9800, mac: '02:00:00:00:00:02' }]]), candidates: new Set([A]),
      peers: new Map([['n2', { ...peer(5000, [[A, claim('10')]]), macs: ['02:00:00:00:00:02'] }]]),
    },
    announce: [A],
  },
  {
    name: 'API down, a known peer\'s MAC keeps answering (repeats), no heartbeat a peer timeout after the first: fenced',
    in: {
      held: new Map([[A, claim('10', 1)]]), foreign: new Map([[A, { at: 9900, firstAt: 8800, mac: '02:00:00:00:00:02' }]]), candidates: new Set([A]),
      peers: new Map([['n2', { ...peer(5000, [[A, claim('10')]]), macs: ['02:00:00:00:00:02'] }]]),
    },
    announce: [], fenced: { [A]: 'foreign-answer' },
  },
  {
    name: 'API down, a known peer\'s MAC answered and no heartbeat followed within a peer timeout: fenced',
    in: {
      held: new Map([[A, claim('10', 1)]]), foreign: new Map([[A, { at: 8500, mac: '02:00:00:00:00:02' }]]), candidates: new Set([A]),
      peers: new Map([['n2', { ...peer(5000, [[A, claim('10')]]), macs: ['02:00:00:00:00:02'] }]]),
    },
    announce: [], fenced: { [A]: 'foreign-answer' },
  },
  {
    name: 'an outage takeover that lost to a better claim stays fenced (shown as such) while the claim is heard',
    in: { takenOver: new Map([[B, claim('11', 1)]]), peers: new Map([['n2', peer(9950, [[B, claim('11', 1)]])]]), me: 'n3' },
    announce: [], fenced: { [B]: 'peer-claim' },
  },
  {
    name: 'API down, a foreign answer from before the outage: old news, still answered',
    in: { held: new Map([[A, claim('10')]]), foreign: new Map([[A, { at: 4000, mac: '02:00:00:00:00:02' }]]) },
    announce: [A],
  },
  {
    name: 'API reachable: a foreign answer alone fences nothing (the lease decides), it is only reported',
    in: { apiReachable: true, electionAnnounce: new Map([[A, claim('10')]]), foreign: new Map([[A, { at: 9000, mac: '02:00:00:00:00:02' }]]) },
    announce: [A],
  },
  {
    name: 'partition healed: a live peer claims my address on a later record: I yield',
    in: { held: new Map([[A, claim('10')]]), peers: new Map([['n2', peer(9950, [[A, claim('10', 1)]])]]) },
    announce: [], fenced: { [A]: 'peer-claim' },
  },
  {
    name: 'partition healed: my claim is the better one: I keep it (the peer yields)',
    in: { held: new Map([[A, claim('10', 1)]]), peers: new Map([['n2', peer(9950, [[A, claim('10')]])]]) },
    announce: [A],
  },
  {
    name: 'API reachable, a peer holds a later lease record for my address: I yield too',
    in: { apiReachable: true, electionAnnounce: new Map([[A, claim('10')]]), peers: new Map([['n2', peer(9950, [[A, claim('12')]], true)]]) },
    announce: [], fenced: { [A]: 'peer-claim' },
  },
  {
    name: 'a claim from a silent peer does not fence (and its own address is taken over: the only voter left)',
    in: { held: new Map([[A, claim('10')]]), peers: new Map([['n2', peer(8000, [[A, claim('10', 1)]])]]) },
    announce: [A, B], takeovers: [B],
  },
  {
    name: 'node died during the outage: its address goes to the live eligible node of highest rendezvous hash',
    in: { peers: new Map([['n2', peer(8500, [[B, claim('11')]])], ['n3', peer(9950)]]) },
    announce: 'winner', takeovers: [B],
  } as never,
  {
    name: 'a holder never heard (no heartbeats from it): never replaced without the API',
    in: { peers: new Map([['n3', peer(9950)]]) },
    announce: [],
  },
  {
    name: 'a live eligible peer reaches the API: it takes the lease, no outage takeover here',
    in: { peers: new Map([['n2', peer(8500, [[B, claim('11')]])], ['n3', peer(9950, [], true)]]) },
    announce: [],
  },
  {
    name: 'API back: an outage takeover stays answered until its lease is written',
    in: { apiReachable: true, takenOver: new Map([[B, claim('11', 1)]]) },
    announce: [B],
  },
  {
    name: 'API back: someone wrote the lease since the takeover: resolved, no longer answered here',
    in: { apiReachable: true, takenOver: new Map([[B, claim('9', 1)]]) },
    announce: [],
  },
];

t.test('decisions', async (t) => {
  for (const c of cases) {
    let out = decideHold(input(c.in));
    if ((c.announce as unknown) === 'winner') {
      // Whichever of n1/n3 the hash picks, exactly one of them takes B.
      const other = decideHold(input({ ...c.in, me: 'n3', peers: new Map([['n2', peer(8500, [[B, claim('11')]])], ['n1', peer(9950)]]) }));
      const takers = [out, other].filter((o) => o.takeovers.has(B));
      t.equal(takers.length, 1, `${c.name}: exactly one taker`);
      t.same(takers[0]!.takeovers.get(B), claim('11', 1), 'its claim rests on the dead holder\'s record, one takeover on');
      out = takers[0]!;
      continue;
    }
    t.same([...out.announce.keys()].sort(), c.announce, c.name);
    t.same(Object.fromEntries([...out.fenced].map(([a, r]) => [a, r.kind])), c.fenced ?? {}, `${c.name}: fences`);
    if (c.takeovers) t.same([...out.takeovers.keys()], c.takeovers, `${c.name}: takeovers`);
  }
});

t.test('property: after a partition heals, every address is answered by at most one node', async (t) => {
  let seed = 7;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const nodes = ['n1', 'n2', 'n3', 'n4'];
  const addresses = Array.from({ length: 6 }, (_, i) => `198.51.100.${210 + i}`);
  for (let world = 0; world < 200; world++) {
    // Each node claims a random subset with random claims (what a partition could leave behind).
    const claims = new Map(nodes.map((n) => [n, new Map(addresses.filter(() => rand(3) === 0).map((a) => [a, claim(String(10 + rand(3)), rand(3))]))]));
    const answered = new Map<string, string[]>();
    for (const me of nodes) {
      const peers = new Map(nodes.filter((n) => n !== me).map((n) => [n, peer(9990, [...claims.get(n)!], rand(2) === 0)]));
      const out = decideHold(input({
        me, apiReachable: rand(2) === 0, held: claims.get(me)!, electionAnnounce: claims.get(me)!, candidates: new Set(addresses), peers,
        leases: new Map(), eligible: new Map(addresses.map((a) => [a, nodes])),
      }));
      for (const a of out.announce.keys()) answered.set(a, [...answered.get(a) ?? [], me]);
    }
    for (const [a, by] of answered) if (by.length > 1) t.fail(`world ${world}: ${a} answered by ${by.join(', ')}`);
  }
  t.pass('200 worlds');
});

t.test('heartbeats: encoded in MTU-sized parts, decoded, folded into peer views once complete', async (t) => {
  const claims = new Map(Array.from({ length: CLAIMS_PER_DATAGRAM + 5 }, (_, i) => [`2001:db8:51::${(i + 0x200).toString(16)}`, claim(String(1000 + i), i % 2)]));
  const parts = encodeHeartbeat('n1', false, 7, claims);
  t.equal(parts.length, 2, 'two datagrams');
  for (const p of parts) t.ok(p.length < 1400, `datagram of ${p.length} bytes`);
  const table = new PeerTable();
  table.heard(decodeHeartbeat(parts[0]!)!, 100);
  t.equal(table.peers.get('n1')?.claims.size, 0, 'claims replaced only once the beat is whole');
  t.equal(table.peers.get('n1')?.lastHeard, 100, 'but alive from the first part');
  table.heard(decodeHeartbeat(parts[1]!)!, 110);
  t.same(table.peers.get('n1')?.claims, claims, 'all claims');
  t.equal(table.peers.get('n1')?.apiReachable, false);
  table.heard(decodeHeartbeat(encodeHeartbeat('n1', true, 8, new Map())[0]!)!, 300);
  t.equal(table.peers.get('n1')?.claims.size, 0, 'an empty beat clears the claims');
  table.heard(decodeHeartbeat(parts[0]!)!, 400);
  table.heard(decodeHeartbeat(parts[1]!)!, 410);
  table.heard(decodeHeartbeat(encodeHeartbeat('n1', true, 9, 'same')[0]!)!, 600);
  t.equal(table.peers.get('n1')?.lastHeard, 600, 'a liveness-only beat keeps the peer alive');
  t.same(table.peers.get('n1')?.claims, claims, 'and its claims as they were');
  t.equal(decodeHeartbeat(Buffer.from('garbage')), undefined);
  t.equal(decodeHeartbeat(Buffer.from(JSON.stringify({ v: 2, node: 'x', api: true, seq: 1, part: 0, parts: 1, claims: [] }))), undefined, 'another version ignored');
  t.equal(decodeHeartbeat(Buffer.from(JSON.stringify({ v: 1, node: 'x', api: true, seq: 1, part: 0, parts: 1, claims: [[1, 2, 3]] }))), undefined, 'bad claims ignored');
});
