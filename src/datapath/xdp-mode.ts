/**
 * Which XDP mode an interface gets under `--xdp-mode auto`, and why.
 *
 * Native XDP is what physical NIC drivers are built for: frames reach the
 * program before any skb, XDP_TX leaves through the NIC's own ring, and the
 * NIC has verified or computed checksums. On a veth (and other virtual
 * devices: kind and containerlab nodes, most test labs) native XDP breaks
 * in two ways nothing on the node can see (../shared/LAB-FACTS.md):
 * a frame sent back with XDP_TX or redirected into a veth is lost unless
 * the peer runs an XDP program of its own, and TCP/UDP from a sender with
 * the default checksum offload arrive with a partial checksum that a
 * rewrite in XDP cannot complete. Generic XDP runs the same program on the
 * skb, after the kernel's own receive path: XDP_TX goes out through the
 * device's transmit path (no peer program needed) and the skb keeps its
 * checksum state. So: native where the interface is backed by a device
 * (with the kernel's fallback to generic when the driver refuses), generic
 * where it is not. `--xdp-mode native|generic` overrides for every interface.
 */
import { existsSync, readlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { XdpMode } from './libbpf.js';

export interface InterfaceFacts {
  name: string;
  /** No bus device behind it (veth, bridge, macvlan, vxlan, bond, dummy, ...). */
  virtual: boolean;
  /** The driver of a device-backed interface (ixgbe, mlx5_core, virtio_net, ...). */
  driver?: string;
}

export interface XdpModeChoice {
  /** What to ask the kernel for ('auto': native, generic if the driver refuses). */
  mode: XdpMode;
  reason: string;
}

export function chooseXdpMode(requested: XdpMode, facts: InterfaceFacts): XdpModeChoice {
  if (requested !== 'auto') return { mode: requested, reason: `--xdp-mode ${requested}` };
  if (facts.virtual) {
    return {
      mode: 'generic',
      reason: 'virtual device (veth or similar): generic XDP, because native XDP_TX into a peer without an XDP program is lost and offloaded checksums arrive partial',
    };
  }
  return { mode: 'auto', reason: `driver ${facts.driver ?? 'unknown'}: native XDP` };
}

/** What sysfs says about `name` in this process's network namespace (/sys must belong to it, as `ip netns exec` arranges). */
export function interfaceFacts(name: string, sysClassNet = '/sys/class/net'): InterfaceFacts {
  const device = join(sysClassNet, name, 'device');
  if (!existsSync(device)) return { name, virtual: true };
  let driver: string | undefined;
  try {
    driver = basename(readlinkSync(join(device, 'driver')));
  } catch {
    driver = undefined;
  }
  return { name, virtual: false, ...(driver ? { driver } : {}) };
}
