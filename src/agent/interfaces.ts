/**
 * The node's interfaces as the agent needs them: index, MAC, operational
 * state and addresses. Read from /sys/class/net and os.networkInterfaces()
 * of the network namespace the agent runs in.
 */
import { readFileSync, existsSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import type { NodeInterface } from '../model/types.js';
import { canonicalAddress } from '../model/cidr.js';

function sysfs(ifname: string, attr: string): string | undefined {
  const p = `/sys/class/net/${ifname}/${attr}`;
  return existsSync(p) ? readFileSync(p, 'utf8').trim() : undefined;
}

export function readInterface(ifname: string): NodeInterface | undefined {
  const ifindex = sysfs(ifname, 'ifindex');
  if (!ifindex) return undefined;
  const oper = sysfs(ifname, 'operstate');
  const flags = Number.parseInt(sysfs(ifname, 'flags') ?? '0', 16);
  // veth and many drivers report "up"; some report "unknown" while IFF_UP|IFF_RUNNING hold.
  const up = oper === 'up' || (oper === 'unknown' && (flags & 0x41) === 0x41);
  const addresses = (networkInterfaces()[ifname] ?? [])
    .filter((a) => !a.internal && !(a.family === 'IPv6' && a.address.startsWith('fe80:')))
    .map((a) => a.address);
  return { name: ifname, ifindex: Number(ifindex), mac: sysfs(ifname, 'address') ?? '00:00:00:00:00:00', up, addresses };
}

export function readInterfaces(names: string[]): NodeInterface[] {
  return names.map((n) => readInterface(n)).filter((i): i is NodeInterface => i !== undefined);
}

/** Every interface of the namespace except loopback (the default when --interfaces is not given). */
export function allInterfaceNames(): string[] {
  return Object.keys(networkInterfaces()).filter((n) => n !== 'lo');
}

/**
 * Every address of every interface in the namespace, loopback included, in
 * canonical form: the backends the data path must hand to the local stack.
 */
export function localAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flatMap((list) => list ?? [])
    .filter((a) => !(a.family === 'IPv6' && a.address.startsWith('fe80:')))
    .map((a) => canonicalAddress(a.address))
    .filter((a): a is string => a !== undefined);
}
