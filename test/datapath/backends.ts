/**
 * The backends of the data-path labs (lab, services-lab, sock-lab):
 * `be${i}` on its own link `b${i}` from the LB namespace `lb` —
 * 198.18.1i.0/24 and 2001:db8:1i::/64, the LB at .1 / ::1, the backend at
 * .2 / ::2 with its default routes back through the LB — running the echo
 * server on HTTP 8080, and if asked UDP 5353 and lab-peer.mjs's TCP echo on
 * 7000.
 */
import { fileURLToPath } from 'node:url';
import { startEchoServer, type Lab } from '../support/lab.js';

const PEER = fileURLToPath(new URL('./lab-peer.mjs', import.meta.url));

export const be4 = (i: number): string => `198.18.1${i}.2`;
export const be6 = (i: number): string => `2001:db8:1${i}::2`;

export interface BackendOptions {
  /** The UDP echo on 5353. */
  udp?: boolean;
  /** lab-peer.mjs tcp-echo on 7000 (echoes what it reads, for long-lived flows). */
  tcpEcho?: boolean;
  /**
   * Ready for frames the LB's XDP redirects: a native XDP_PASS on eth0, and
   * software checksums (a redirect loses veth's CHECKSUM_PARTIAL, LAB-FACTS).
   */
  xdpPeer?: boolean;
}

export async function addBackend(lab: Lab, i: number, opts: BackendOptions = {}): Promise<void> {
  const ns = `be${i}`;
  await lab.addNamespace(ns);
  await lab.addLink({ ns: 'lb', ifname: `b${i}`, addrs: [`198.18.1${i}.1/24`, `2001:db8:1${i}::1/64`] }, { ns, ifname: 'eth0', addrs: [`${be4(i)}/24`, `${be6(i)}/64`] });
  await lab.exec(ns, ['sh', '-c', `ip route add default via 198.18.1${i}.1 && ip -6 route add default via 2001:db8:1${i}::1`]);
  if (opts.xdpPeer) {
    await lab.attachXdpPass(ns, 'eth0');
    await lab.exec(ns, ['ethtool', '-K', 'eth0', 'tx', 'off']);
  }
  await startEchoServer(lab, ns, { name: ns, port: 8080 });
  if (opts.udp) await startEchoServer(lab, ns, { name: ns, port: 5353, udp: true });
  if (opts.tcpEcho) {
    const echo = lab.spawn(ns, [process.execPath, PEER, 'tcp-echo', ns, '7000']);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`tcp-echo in ${ns} did not start`)), 5000);
      echo.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('listening')) { clearTimeout(timer); resolve(); } });
      echo.once('exit', (code) => { clearTimeout(timer); reject(new Error(`tcp-echo in ${ns} exited ${code}`)); });
    });
  }
}
