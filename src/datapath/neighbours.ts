/**
 * Keeps the kernel's neighbour table resolved for every backend's next hop,
 * so the XDP fast path (bpf_fib_lookup) finds a MAC from the first packet.
 *
 * Why: on a FIB miss for the neighbour (BPF_FIB_LKUP_RET_NO_NEIGH) the
 * data path can only hand the packet to the kernel, and a packet already
 * SNATed to the node's own address is then a "martian" (a local source
 * arriving from outside) and is dropped. A `managed` neighbour entry
 * (kernel ≥ 5.16, NTF_MANAGED — the same mechanism Cilium uses) makes the
 * kernel resolve the address at once and keep it REACHABLE by itself.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

interface Route {
  type?: string;
  dst: string;
  gateway?: string;
  dev: string;
}

export interface NextHop {
  address: string;
  dev: string;
}

export class NeighbourPrimer {
  /** next-hop key `addr%dev` → backends using it */
  private readonly managed = new Map<string, Set<string>>();
  private readonly byBackend = new Map<string, string>();

  constructor(private readonly onError: (backend: string, message: string) => void = () => undefined) {}

  /** The next hop the kernel would use for `address`, or undefined for local/unreachable addresses. */
  static async nextHop(address: string): Promise<NextHop | undefined> {
    try {
      const { stdout } = await run('ip', ['-j', 'route', 'get', address]);
      const [route] = JSON.parse(stdout) as Route[];
      if (!route || route.type === 'local' || route.dev === 'lo') return undefined;
      return { address: route.gateway ?? address, dev: route.dev };
    } catch {
      return undefined;
    }
  }

  /** Make the set of primed backends equal to `backends` (addresses). */
  async sync(backends: Iterable<string>): Promise<void> {
    const want = new Set(backends);
    for (const [backend, key] of [...this.byBackend]) {
      if (want.has(backend)) continue;
      this.byBackend.delete(backend);
      const users = this.managed.get(key);
      users?.delete(backend);
      if (users && users.size === 0) {
        this.managed.delete(key);
        const [address, dev] = key.split('%') as [string, string];
        // Leave the entry, drop the flag: the kernel ages it out normally.
        await run('ip', ['neigh', 'change', address, 'dev', dev, 'nud', 'stale']).catch(() => undefined);
      }
    }
    for (const backend of want) {
      if (this.byBackend.has(backend)) continue;
      const hop = await NeighbourPrimer.nextHop(backend);
      if (!hop) continue;
      const key = `${hop.address}%${hop.dev}`;
      this.byBackend.set(backend, key);
      const users = this.managed.get(key) ?? new Set<string>();
      users.add(backend);
      if (users.size === 1) {
        try {
          await run('ip', ['neigh', 'replace', hop.address, 'dev', hop.dev, 'managed']);
        } catch (err) {
          this.onError(backend, `cannot add a managed neighbour for ${hop.address} on ${hop.dev}: ${((err as { stderr?: string }).stderr ?? (err as Error).message).trim()}`);
        }
      }
      this.managed.set(key, users);
    }
  }

  primed(): string[] {
    return [...this.managed.keys()];
  }
}
