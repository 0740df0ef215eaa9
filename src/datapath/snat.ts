/**
 * Which source address SNAT writes, as the kernel's MASQUERADE picks it:
 * the address of the interface a packet leaves by, per family, so a
 * two-armed node (clients on one interface, backends on another, whose
 * default route points elsewhere) is answered on an address the backends
 * can reach. `--snat-addresses` overrides: `ADDR` is the one source of its
 * family on every interface; `IFACE=ADDR` that interface's. The node-wide
 * address (ph_runtime) serves egress interfaces the agent knows nothing of.
 * Pure: bpf/lib/maps.h (ph_if_snat, snat_source) applies it per packet.
 */
import { isIP } from 'node:net';

export interface SnatInterface {
  name: string;
  ifindex: number;
  /** Global addresses, in the interface's order (the first of a family is its primary). */
  addresses: string[];
}

export interface SnatPlan {
  nodeV4?: string;
  nodeV6?: string;
  /** ifindex -> the interface's own source per family (a family absent: the node-wide one). */
  interfaces: Map<number, { v4?: string; v6?: string }>;
}

export interface SnatOverride {
  /** Absent: every interface. */
  interface?: string;
  address: string;
}

/** `ADDR` or `IFACE=ADDR`; throws naming the entry. */
export function parseSnatOverride(entry: string): SnatOverride {
  const eq = entry.indexOf('=');
  const [iface, address] = eq >= 0 ? [entry.slice(0, eq), entry.slice(eq + 1)] : [undefined, entry];
  if (iface !== undefined && !/^[^\s/=]{1,15}$/.test(iface)) throw new Error(`"${entry}": "${iface}" is not an interface name`);
  if (!isIP(address)) throw new Error(`"${entry}": "${address}" is not an IP address`);
  return { ...(iface !== undefined ? { interface: iface } : {}), address };
}

const v6 = (a: string): boolean => a.includes(':');

export function planSnat(overrides: readonly SnatOverride[], interfaces: readonly SnatInterface[]): SnatPlan {
  const everywhere = { v4: overrides.find((o) => !o.interface && !v6(o.address))?.address, v6: overrides.find((o) => !o.interface && v6(o.address))?.address };
  const all = interfaces.flatMap((i) => i.addresses);
  const nodeV4 = everywhere.v4 ?? all.find((a) => !v6(a));
  const nodeV6 = everywhere.v6 ?? all.find(v6);
  const out = new Map<number, { v4?: string; v6?: string }>();
  for (const i of interfaces) {
    const mine = overrides.filter((o) => o.interface === i.name);
    const pick = (isV6: boolean): string | undefined => {
      if (isV6 ? everywhere.v6 : everywhere.v4) return undefined;
      return mine.find((o) => v6(o.address) === isV6)?.address ?? i.addresses.find((a) => v6(a) === isV6);
    };
    const a = { v4: pick(false), v6: pick(true) };
    if (a.v4 || a.v6) out.set(i.ifindex, { ...(a.v4 ? { v4: a.v4 } : {}), ...(a.v6 ? { v6: a.v6 } : {}) });
  }
  return { ...(nodeV4 ? { nodeV4 } : {}), ...(nodeV6 ? { nodeV6 } : {}), interfaces: out };
}
