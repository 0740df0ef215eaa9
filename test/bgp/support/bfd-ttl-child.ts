/**
 * Runs inside the bfd-ttl test's namespace: BfdSockets on the namespace's
 * own addresses, with or without the native TTL filter (argv[2] 'filter' |
 * 'none'); a plain UDP socket plays the peer and sends one Down packet with
 * TTL 64, then one with TTL 255. Prints, per family, the session as seen
 * after each packet, as one JSON line.
 */
import dgram from 'node:dgram';
import { BfdSockets } from '../../../src/bgp/bfd-socket.js';
import { DEFAULT_BFD_TIMERS, encodeBfdControl } from '../../../src/bgp/bfd.js';
import { addon } from '../../../src/native/libbpf.js';
import { sleep, waitFor } from '../../../src/lab/wait.js';

const withFilter = process.argv[2] === 'filter';
const PEERS = { udp4: '192.0.2.1', udp6: '2001:db8::1' } as const;
const PEER_SOURCE_PORT = 49_200;

const sockets = new BfdSockets({
  ...(withFilter ? { ttlFilter: (fd: number, ttl: number) => addon().attachTtlFilter(fd, ttl) } : {}),
});
const down = encodeBfdControl({
  diag: 0, state: 'Down', poll: false, final: false, controlPlaneIndependent: false, authPresent: false, demand: false, multipoint: false,
  detectMult: 3, myDiscriminator: 77, yourDiscriminator: 0, desiredMinTxUs: 1_000_000, requiredMinRxUs: 300_000, requiredMinEchoRxUs: 0,
});

const out: Record<string, unknown> = {};
for (const [kind, peer] of Object.entries(PEERS) as ['udp4' | 'udp6', string][]) {
  sockets.ensure({ peerAddress: peer, localAddress: peer, timers: { ...DEFAULT_BFD_TIMERS, passive: true } });
  await waitFor(`the ${kind} receive socket`, 5_000, async () => (sockets.status(peer)?.ttlChecked === withFilter ? true : undefined));
  const sender = dgram.createSocket({ type: kind, ...(kind === 'udp6' ? { ipv6Only: true } : {}) });
  await new Promise<void>((resolve) => sender.bind({ port: PEER_SOURCE_PORT, address: peer }, resolve));
  const sendWithTtl = async (ttl: number): Promise<unknown> => {
    sender.setTTL(ttl);
    await new Promise<void>((resolve, reject) => sender.send(down, 3784, peer, (e) => (e ? reject(e) : resolve())));
    await sleep(300);
    const s = sockets.status(peer)!;
    return { state: s.state, received: s.packetsReceived, discarded: s.packetsDiscarded, ttlChecked: s.ttlChecked };
  };
  out[kind] = { ttl64: await sendWithTtl(64), ttl255: await sendWithTtl(255) };
  sender.close();
}
out.badTtl = sockets.unmatched.badTtl;
await sockets.stop();
process.stdout.write(`${JSON.stringify(out)}\n`);
