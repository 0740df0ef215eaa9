import t from 'tap';
import { addon } from '../../src/native/libbpf.js';
import { compareOutcome, perf, runFixtures, runOnce, summarize, verdictName, xdpContext, type Fixture } from './fixtures.js';
import { supportBpfObject } from './lab.js';
import { pkt, truncate } from '../../src/lab/packet.js';
import { privilegedUnavailable } from './privileged.js';

const A = '02:00:00:00:00:0a';
const B = '02:00:00:00:00:0b';
const eth = { src: A, dst: B };
const ip = { src: '198.18.0.1', dst: '198.18.0.10' };

const echo = pkt().eth(eth).ipv4({ ...ip, id: 5 }).icmp({ type: 8, id: 77, seq: 1 }).payload('ping payload').build();
const echoReply = pkt().eth({ src: B, dst: A }).ipv4({ src: ip.dst, dst: ip.src, id: 5 }).icmp({ type: 0, id: 77, seq: 1 }).payload('ping payload').build();
const tcp = pkt().eth(eth).ipv4(ip).tcp({ sport: 1000, dport: 80, flags: 'S' }).build();

t.test('compareOutcome names wrong verdicts and shows a hex diff of wrong output', async (t) => {
  t.equal(verdictName(3), 'XDP_TX');
  t.equal(verdictName(9), 'retval 9');
  const fx: Fixture = { name: 'echo', input: echo, expect: { verdict: 'XDP_TX', output: echoReply } };
  t.same(compareOutcome(fx, { retval: 3, dataOut: echoReply }), []);
  t.same(compareOutcome({ ...fx, expect: { verdict: 'XDP_TX' } }, { retval: 3, dataOut: echo }), [], 'output not judged when not given');
  const wrongVerdict = compareOutcome(fx, { retval: 2, dataOut: echoReply });
  t.same(wrongVerdict, ['verdict: expected XDP_TX, got XDP_PASS']);
  const wrongBytes = compareOutcome(fx, { retval: 3, dataOut: echo });
  t.equal(wrongBytes.length, 1);
  t.match(wrongBytes[0], /output differs/);
  t.match(wrongBytes[0], /expected: 02:00:00:00:00:0b > 02:00:00:00:00:0a ipv4 198\.18\.0\.10 > 198\.18\.0\.1 ttl 64 icmp type 0 code 0 len 54/);
  t.match(wrongBytes[0], /actual: {3}02:00:00:00:00:0a > 02:00:00:00:00:0b ipv4 198\.18\.0\.1 > 198\.18\.0\.10 ttl 64 icmp type 8/);
  t.match(wrongBytes[0], /\^\^/);
  t.match(summarize(pkt().eth(eth).ipv4({ ...ip, checksum: 'bad' }).udp({ sport: 1, dport: 2, checksum: 'bad' }).build()), /BAD-IP-CSUM udp 1 > 2 BAD-CSUM/);
  t.match(summarize(truncate(tcp, 40)), /TRUNCATED len 40/);
  t.same(xdpContext(7, 1), Buffer.from('000000000000000000000000070000000100000000000000', 'hex'));
});

t.test('runFixtures and perf against a real program', { skip: privilegedUnavailable() }, async (t) => {
  const obj = addon().openObject(await supportBpfObject('xdp_fixture'));
  t.teardown(() => obj.close());
  obj.load();
  const prog = obj.program('xdp_fixture');
  let setupRan = 0;
  const fixtures: Fixture[] = [
    { name: 'ARP is dropped', input: pkt().eth({ src: A, dst: 'ff:ff:ff:ff:ff:ff' }).arp({ op: 'request', sha: A, spa: ip.src, tpa: ip.dst }).build(), expect: { verdict: 'XDP_DROP' } },
    { name: 'UDP to discard is dropped', input: pkt().eth(eth).ipv4(ip).udp({ sport: 1, dport: 9 }).build(), expect: { verdict: 'XDP_DROP' } },
    { name: 'UDP to echo aborts', input: pkt().eth(eth).ipv4(ip).udp({ sport: 1, dport: 7 }).build(), expect: { verdict: 'XDP_ABORTED' } },
    { name: 'ICMP echo is answered in place', input: echo, expect: { verdict: 'XDP_TX', output: echoReply }, setup: () => { setupRan++; } },
    { name: 'TCP passes untouched', input: tcp, expect: { verdict: 'XDP_PASS', output: tcp } },
    { name: 'IPv4 with options passes (ihl != 5)', input: pkt().eth(eth).ipv4({ ...ip, options: Buffer.from([1, 1, 1, 1]) }).icmp({ type: 8 }).build(), expect: { verdict: 'XDP_PASS' } },
    { name: 'truncated IPv4 header passes', input: truncate(echo, 20), expect: { verdict: 'XDP_PASS', output: truncate(echo, 20) } },
    {
      name: 'output checked by a callback', input: echo,
      expect: { verdict: 'XDP_TX', output: (p, st) => { st.equal(p.icmp?.type, 0); st.equal(p.icmp?.checksumOk, true); st.equal(p.ip?.dst, ip.src); } },
    },
    { name: 'with an ingress ifindex in the context', input: tcp, run: { ctxIn: xdpContext(1) }, expect: { verdict: 'XDP_PASS', output: tcp } },
  ];
  await runFixtures(t, addon(), prog.fd, fixtures);
  t.equal(setupRan, 1, 'setup ran before its packet');
  await t.rejects(runFixtures(t, addon(), prog.fd, [fixtures[0]!, fixtures[0]!]), /duplicate fixture name/);

  // The runner really compares: a wrong expectation is reported.
  const wrong = runOnce(addon(), prog.fd, echo);
  t.match(compareOutcome({ name: 'x', input: echo, expect: { verdict: 'XDP_PASS', output: echo } }, wrong).join('\n'), /expected XDP_PASS, got XDP_TX[\s\S]*output differs/);

  const ns = perf(addon(), prog.fd, echo, 100_000);
  t.ok(ns > 0 && ns < 5_000, `perf: ${ns} ns/pkt for the echo rewrite`);
  t.comment(`xdp_fixture echo rewrite: ${ns} ns/pkt (BPF_PROG_TEST_RUN, repeat 1e5, median of 3)`);
});
