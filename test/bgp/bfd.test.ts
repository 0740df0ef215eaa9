/**
 * The pure BFD state machine (src/bgp/bfd.ts): two sessions wired to each
 * other on a simulated clock, so every RFC 5880 rule is checked without
 * sockets or real time — the three-way handshake, the slow (1 s) interval
 * until Up, the poll sequence that moves to fast timers, detection time =
 * remote multiplier × agreed interval, neighbor-signalled and administrative
 * down, and the packet codec's discards. Then the policy: a neighbor's
 * `bfd` block parsed, validated and handed to the speaker.
 */
import t from 'tap';
import fc from 'fast-check';
import { parse as parseYaml } from 'yaml';
import { parseObject } from '../../src/model/parse.js';
import { Store } from '../../src/store/store.js';
import { desiredBgp } from '../../src/bgp/policy.js';
import { serviceScope } from '../../src/model/scope.js';
import {
  BfdDiag,
  BfdSession,
  decodeBfdControl,
  encodeBfdControl,
  type BfdControlPacket,
  type BfdOutput,
  type BfdTimers,
  type BfdTransition,
} from '../../src/bgp/bfd.js';

/** Two sessions and a wire between them; `cut` drops packets in one direction. */
class Pair {
  now = 0;
  readonly transitions: { side: 'a' | 'b'; t: BfdTransition }[] = [];
  readonly wire: { from: 'a' | 'b'; p: BfdControlPacket }[] = [];
  cutFromA = false;
  cutFromB = false;
  readonly a: BfdSession;
  readonly b: BfdSession;

  constructor(timersA: BfdTimers, timersB: BfdTimers = timersA, jitter = 0) {
    this.a = new BfdSession(0x11, timersA, 0, () => jitter);
    this.b = new BfdSession(0x22, timersB, 0, () => jitter);
  }

  private deliver(from: 'a' | 'b', out: BfdOutput): void {
    if (out.transition) this.transitions.push({ side: from, t: out.transition });
    for (const p of out.send) {
      this.wire.push({ from, p });
      if (from === 'a' ? this.cutFromA : this.cutFromB) continue;
      // Round-trip through the codec, as the socket layer does.
      const decoded = decodeBfdControl(encodeBfdControl(p));
      if ('discard' in decoded) throw new Error(decoded.discard);
      const peer = from === 'a' ? 'b' : 'a';
      this.deliver(peer, (peer === 'a' ? this.a : this.b).receive(decoded, this.now));
    }
  }

  /** Runs both sessions' timers until `until` (ms), in deadline order. */
  runUntil(until: number): void {
    for (let guard = 0; guard < 100_000; guard++) {
      const next = Math.min(this.a.nextDeadline(), this.b.nextDeadline());
      if (next > until) break;
      this.now = Math.max(this.now, next);
      if (this.a.nextDeadline() <= this.now) this.deliver('a', this.a.tick(this.now));
      if (this.b.nextDeadline() <= this.now) this.deliver('b', this.b.tick(this.now));
    }
    this.now = until;
  }
}

const FAST: BfdTimers = { minTxMs: 300, minRxMs: 300, multiplier: 3 };

t.test('three-way handshake: Down -> Init -> Up on both sides, slow packets until Up', async (t) => {
  const pair = new Pair(FAST);
  pair.runUntil(10);
  t.equal(pair.a.state, 'Up');
  t.equal(pair.b.state, 'Up');
  const seenA = pair.transitions.filter((x) => x.side === 'a').map((x) => x.t.to);
  const seenB = pair.transitions.filter((x) => x.side === 'b').map((x) => x.t.to);
  // a speaks first (Down); b goes Init; a sees Init and goes Up; b sees Up.
  t.same(seenA, ['Up']);
  t.same(seenB, ['Init', 'Up']);
  // Before Up, Desired Min TX on the wire is 1 s (RFC 5880 §6.8.3).
  t.equal(pair.wire[0]!.p.desiredMinTxUs, 1_000_000);
  t.equal(pair.wire[0]!.p.state, 'Down');
  t.equal(pair.wire[0]!.p.yourDiscriminator, 0);
  t.equal(pair.a.view().remoteDiscriminator, 0x22);
  t.equal(pair.b.view().remoteDiscriminator, 0x11);
});

t.test('poll sequence moves both to the fast interval; Final ends it', async (t) => {
  const pair = new Pair(FAST);
  pair.runUntil(10);
  const polls = pair.wire.filter((w) => w.p.poll);
  t.ok(polls.length >= 1, 'a poll announced the fast TX interval');
  t.ok(pair.wire.some((w) => w.p.final && !w.p.poll), 'the peer answered with Final, P clear');
  t.notOk(pair.a.view().pollActive);
  t.notOk(pair.b.view().pollActive);
  t.equal(pair.a.view().txIntervalMs, 300);
  t.equal(pair.a.view().detectionTimeMs, 900, 'remote multiplier 3 x agreed 300 ms');
  // Steady state: packets every 300 ms (jitter 0 here), no P or F.
  const before = pair.wire.length;
  pair.runUntil(3010);
  const steady = pair.wire.slice(before);
  t.ok(steady.length >= 18 && steady.length <= 22, `~20 packets in 3 s from two sides, got ${steady.length}`);
  t.ok(steady.every((w) => !w.p.poll && !w.p.final && w.p.state === 'Up'));
  t.equal(pair.a.state, 'Up');
});

t.test('detection time is the REMOTE multiplier x max(our RX, their TX)', async (t) => {
  // a wants 100 ms RX, mult 3; b sends no faster than 400 ms, mult 5.
  const pair = new Pair({ minTxMs: 100, minRxMs: 100, multiplier: 3 }, { minTxMs: 400, minRxMs: 200, multiplier: 5 });
  pair.runUntil(10);
  pair.runUntil(2000);
  t.equal(pair.a.view().detectionTimeMs, 5 * 400, 'a: b multiplier 5 x b TX 400');
  t.equal(pair.b.view().detectionTimeMs, 3 * 200, 'b: a multiplier 3 x max(b RX 200, a TX 100)');
  t.equal(pair.a.view().txIntervalMs, 200, 'a sends no faster than b accepts');
  t.equal(pair.b.view().txIntervalMs, 400);
});

t.test('peer falls silent: Down with diag 1 within detection time, and not before', async (t) => {
  const pair = new Pair(FAST);
  pair.runUntil(3000);
  pair.cutFromB = true;
  const cutAt = pair.now;
  pair.runUntil(cutAt + 550);
  t.equal(pair.a.state, 'Up', 'still Up before 3 intervals passed');
  pair.runUntil(cutAt + 1000);
  t.equal(pair.a.state, 'Down');
  const down = pair.transitions.find((x) => x.side === 'a' && x.t.to === 'Down')!;
  t.equal(down.t.diag, BfdDiag.ControlDetectionTimeExpired);
  t.ok(down.t.at - cutAt <= 900 && down.t.at - cutAt > 600, `declared down ${down.t.at - cutAt} ms after the last packet window`);
  t.equal(pair.a.view().remoteDiscriminator, 0, 'peer discriminator forgotten');
  // b still hears a, which now says Down: b goes Down too, diag 3.
  t.equal(pair.b.state, 'Down');
  t.equal(pair.transitions.find((x) => x.side === 'b' && x.t.to === 'Down')!.t.diag, BfdDiag.NeighborSignaledSessionDown);
  // a's packets carry diag 1 now, and slow TX again.
  const last = pair.wire.filter((w) => w.from === 'a').at(-1)!.p;
  t.equal(last.diag, BfdDiag.ControlDetectionTimeExpired);
  t.equal(last.desiredMinTxUs, 1_000_000);
  // The path heals: the session comes back Up.
  pair.cutFromB = false;
  pair.runUntil(pair.now + 3000);
  t.equal(pair.a.state, 'Up');
  t.equal(pair.b.state, 'Up');
  t.equal(pair.a.view().transitions, 3, 'Up, Down, Up');
});

t.test('AdminDown: the peer goes Down with diag 3 (neighbor signalled), no detection expiry', async (t) => {
  const pair = new Pair(FAST);
  pair.runUntil(1000);
  const out = pair.a.adminDown(pair.now);
  t.equal(out.transition?.to, 'AdminDown');
  t.equal(out.send[0]?.diag, BfdDiag.AdministrativelyDown);
  (pair as unknown as { deliver(f: string, o: BfdOutput): void }).deliver('a', out);
  t.equal(pair.b.state, 'Down');
  pair.runUntil(pair.now + 5000);
  t.equal(pair.a.state, 'AdminDown', 'AdminDown ignores the peer');
  t.equal(pair.b.state, 'Down', 'the peer does not come up against AdminDown');
  (pair as unknown as { deliver(f: string, o: BfdOutput): void }).deliver('a', pair.a.adminUp(pair.now));
  pair.runUntil(pair.now + 3000);
  t.equal(pair.a.state, 'Up');
  t.equal(pair.b.state, 'Up');
});

t.test('a timer change while Up runs a poll; a larger TX takes effect only after Final', async (t) => {
  const pair = new Pair(FAST);
  pair.runUntil(2000);
  pair.cutFromB = true; // b cannot answer: the poll stays open
  pair.a.setTimers({ minTxMs: 600, minRxMs: 300, multiplier: 3 }, pair.now);
  pair.runUntil(pair.now + 200);
  t.ok(pair.a.view().pollActive);
  t.equal(pair.a.view().txIntervalMs, 300, 'old TX kept until the peer confirms');
  pair.cutFromB = false;
  pair.runUntil(pair.now + 700);
  t.notOk(pair.a.view().pollActive);
  t.equal(pair.a.view().txIntervalMs, 600);
  t.equal(pair.b.view().detectionTimeMs, 1800, 'b now waits 3 x 600');
  t.equal(pair.a.state, 'Up');
  t.equal(pair.b.state, 'Up');
});

t.test('transmit jitter stays in 75-100% of the interval (75-90% with multiplier 1)', async (t) => {
  for (const [mult, low, high] of [[3, 0.75, 1], [1, 0.75, 0.9]] as const) {
    fc.assert(fc.property(fc.double({ min: 0, max: 0.999999, noNaN: true }), (r) => {
      const s = new BfdSession(1, { minTxMs: 1000, minRxMs: 1000, multiplier: mult }, 0, () => r);
      s.tick(0);
      const next = s.nextDeadline();
      return next >= 1000 * low - 1e-9 && next <= 1000 * high + 1e-9;
    }));
  }
  t.pass();
});

t.test('passive role: silent until the peer speaks, then the usual handshake', async (t) => {
  const pair = new Pair(FAST);
  (pair.b as unknown as { timers: BfdTimers }).timers = { ...FAST, passive: true };
  pair.cutFromA = true; // a is not heard yet
  pair.runUntil(5000);
  t.equal(pair.wire.filter((w) => w.from === 'b').length, 0, 'the passive side sent nothing in 5 s');
  pair.cutFromA = false;
  pair.runUntil(pair.now + 3000);
  t.equal(pair.a.state, 'Up');
  t.equal(pair.b.state, 'Up');
  t.ok(pair.wire.some((w) => w.from === 'b'), 'it answers once spoken to');
});

t.test('packets addressed to another discriminator are discarded', async (t) => {
  const s = new BfdSession(7, FAST, 0);
  const p = decodeBfdControl(encodeBfdControl({
    diag: 0, state: 'Init', poll: false, final: false, controlPlaneIndependent: false, authPresent: false, demand: false,
    multipoint: false, detectMult: 3, myDiscriminator: 9, yourDiscriminator: 8, desiredMinTxUs: 1e6, requiredMinRxUs: 1e6, requiredMinEchoRxUs: 0,
  }));
  if ('discard' in p) throw new Error(p.discard);
  const out = s.receive(p, 1);
  t.equal(out.transition, undefined);
  t.equal(s.state, 'Down');
  t.equal(s.view().packetsDiscarded, 1);
});

t.test('codec: round trip and every RFC 5880 §6.8.6 discard', async (t) => {
  const base: BfdControlPacket = {
    diag: 3, state: 'Up', poll: true, final: false, controlPlaneIndependent: true, authPresent: false, demand: false,
    multipoint: false, detectMult: 5, myDiscriminator: 0xdeadbeef, yourDiscriminator: 1, desiredMinTxUs: 300_000, requiredMinRxUs: 250_000, requiredMinEchoRxUs: 0,
  };
  const wire = encodeBfdControl(base);
  t.equal(wire.toString('hex'), '23e80518deadbeef00000001000493e00003d09000000000');
  t.same(decodeBfdControl(wire), base);
  const discard = (mutate: (b: Buffer) => void | Buffer): string => {
    const b = Buffer.from(wire);
    const r = decodeBfdControl(mutate(b) ?? b);
    return 'discard' in r ? r.discard : 'accepted';
  };
  t.match(discard((b) => b.subarray(0, 20)), /shorter/);
  t.match(discard((b) => { b[0] = (2 << 5) | 3; }), /version 2/);
  t.match(discard((b) => { b[3] = 20; }), /length field 20/);
  t.match(discard((b) => { b[3] = 40; }), /exceeds/);
  t.match(discard((b) => { b[2] = 0; }), /multiplier 0/);
  t.match(discard((b) => { b[1] = b[1]! | 0x01; }), /multipoint/);
  t.match(discard((b) => { b.writeUInt32BE(0, 4); }), /my discriminator 0/);
  t.match(discard((b) => { b.writeUInt32BE(0, 8); }), /your discriminator 0 in state Up/);
  t.equal(discard((b) => { b.writeUInt32BE(0, 8); b[1] = (1 << 6); }), 'accepted', 'your discriminator 0 is fine in Down');
  t.match(discard((b) => { b[1] = b[1]! | 0x04; b[3] = 26; return Buffer.concat([b, Buffer.alloc(2)]); }), /authentication/);
  // Nothing on port 3784 can throw out of the decoder.
  fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
    decodeBfdControl(Buffer.from(bytes));
    return true;
  }));
});

// ------------------------------------------------------------------ policy

const policyDoc = (extra: string): string => `apiVersion: lb.pharos.io/v1alpha1
kind: BGPPeeringPolicy
metadata: { name: edge }
spec:
  virtualRouters:
    - localASN: 64512
      neighbors:
        - { peerAddress: 198.18.0.1/32, peerASN: 64500${extra} }
        - { peerAddress: 198.18.0.5/32, peerASN: 64500 }
`;

t.test('policy: a neighbor bfd block (MetalLB BFDProfile names, ms) reaches the speaker; bad values name the object and field', async (t) => {
  const parsed = parseObject(parseYaml(policyDoc(', bfd: { receiveInterval: 200, transmitInterval: 250, detectMultiplier: 4 }')));
  if (!parsed.ok) throw new Error(String((parsed as { error: unknown }).error));
  const store = new Store();
  store.apply(parsed.object);
  store.markSynced();
  const desired = desiredBgp(store.snapshot(), 'lb-1', { routerId: '192.0.2.1', isOurService: serviceScope(true) });
  const [withBfd, without] = desired.peers;
  t.same(withBfd!.bfd, { minRxMs: 200, minTxMs: 250, multiplier: 4 });
  t.equal(without!.bfd, undefined, 'no block: no BFD');

  const defaults = parseObject(parseYaml(policyDoc(', bfd: {}')));
  t.match(JSON.stringify(defaults), /"bfd":\{"receiveInterval":300,"transmitInterval":300,"detectMultiplier":3\}/, 'an empty block is 300 ms x 3');
  t.notMatch(JSON.stringify(parseObject(parseYaml(policyDoc(', bfd: { enabled: false }')))), /"bfd"/, 'enabled: false runs none');
  const errorOf = (extra: string): string => {
    const r = parseObject(parseYaml(policyDoc(extra)));
    return r.ok ? 'accepted' : String((r as { error: unknown }).error);
  };
  t.match(errorOf(', bfd: { receiveInterval: 5 }'), /BGPPeeringPolicy "edge": spec\.virtualRouters\[0\]\.neighbors\[0\]\.bfd\.receiveInterval: 5 is out of range 10\.\.60000/);
  t.match(errorOf(', bfd: { detectMultiplier: 1 }'), /neighbors\[0\]\.bfd\.detectMultiplier: 1 is out of range 2\.\.255/);
  t.match(errorOf(', bfd: { transmitInterval: "fast" }'), /neighbors\[0\]\.bfd\.transmitInterval/);
  t.match(errorOf(', bfd: { echoMode: true }'), /neighbors\[0\]\.bfd\.echoMode: unknown field/);
  t.match(errorOf(', bfd: 3'), /neighbors\[0\]\.bfd: must be an object/);
  const passive = parseObject(parseYaml(policyDoc(', bfd: { passiveMode: true }')));
  t.match(JSON.stringify(passive), /"passiveMode":true/, 'passiveMode parsed');
  t.match(errorOf(', bfd: { passiveMode: sometimes }'), /neighbors\[0\]\.bfd\.passiveMode/);
});
