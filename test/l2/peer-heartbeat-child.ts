/**
 * Child of peers-v6.test.ts: runs one node's peer heartbeats (src/l2/peers.ts)
 * in the namespace it was started in, claiming one address, until it has
 * heard a peer claim something and 1 s more (at most DURATION ms: the other
 * child may start seconds later on a loaded machine), then prints the peers
 * it heard (as first heard with claims) and how many datagrams it sent.
 * Usage: node --import tsx peer-heartbeat-child.ts NODE PORT IFACE DURATION_MS
 */
import { PeerHeartbeats } from '../../src/l2/peers.js';

const [node, port, iface, duration] = process.argv.slice(2) as [string, string, string, string];
const errors: string[] = [];
const hb = new PeerHeartbeats({
  node, port: Number(port), intervalMs: 100, interfaces: [iface],
  state: () => ({ api: false, claims: new Map([[`2001:db8:66::${node === 'a' ? 'a' : 'b'}`, { rv: '7', takeovers: 0 }]]) }),
  onError: (err) => errors.push(err.message),
});
const peers: Record<string, { claims: string[]; macs: readonly string[] }> = {};
await hb.start();
const deadline = Date.now() + Number(duration);
let heardAt: number | undefined;
while (Date.now() < deadline && (heardAt === undefined || Date.now() - heardAt < 1000)) {
  for (const [name, p] of hb.table.peers) {
    if (!peers[name] && p.claims.size > 0) peers[name] = { claims: [...p.claims.keys()], macs: p.macs ?? [] };
  }
  if (heardAt === undefined && Object.keys(peers).length > 0) heardAt = Date.now();
  await new Promise((r) => setTimeout(r, 50));
}
await hb.stop();
process.stdout.write(JSON.stringify({ peers, sent: hb.sent, received: hb.received, errors }) + '\n');
