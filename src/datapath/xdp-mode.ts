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
 * rewrite in XDP cannot complete. Generic XDP and tc ingress both run on
 * the skb, but generic XDP cannot forward a GSO skb (a TCP sender's 64 KiB
 * "super packet", which every veth carries from a pod or node with the
 * default offloads): measured in a kind-shaped lab, bulk TCP through
 * generic XDP moved nothing at all, through the tc build of the same
 * program (bpf/lib/ctx.h) ~10 Gbit/s, connections per second and ARP
 * answers alike (bpf/README.md, "XDP or tc on veth", bench/attach.ts). So:
 * native XDP where the interface is backed by a device (with the kernel's
 * fallback to generic when the driver refuses), tc ingress where it is
 * not. `--xdp-mode native|generic|tc` overrides for every interface.
 */
import { existsSync, readlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { XdpMode } from '../native/libbpf.js';

/** What `--xdp-mode` takes: an XDP mode, 'tc' (the tc build at tc ingress), or 'auto' (chosen per interface). */
export type AttachMode = XdpMode | 'tc';

export interface InterfaceFacts {
  name: string;
  /** No bus device behind it (veth, bridge, macvlan, vxlan, bond, dummy, ...). */
  virtual: boolean;
  /** The driver of a device-backed interface (ixgbe, mlx5_core, virtio_net, ...). */
  driver?: string;
}

export interface XdpModeChoice {
  /** What to attach ('auto': native XDP, generic if the driver refuses; 'tc': the tc build at tc ingress). */
  mode: AttachMode;
  reason: string;
}

export function chooseXdpMode(requested: AttachMode, facts: InterfaceFacts): XdpModeChoice {
  if (requested !== 'auto') return { mode: requested, reason: `--xdp-mode ${requested}` };
  if (facts.virtual) {
    return {
      mode: 'tc',
      reason: 'virtual device (veth or similar): tc ingress, because native XDP_TX into a peer without an XDP program is lost, offloaded checksums arrive partial, and generic XDP drops TCP sent with GSO',
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
