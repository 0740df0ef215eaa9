/**
 * The world the data-path fixtures run in: one network namespace with two
 * interfaces whose neighbours are static, so bpf_fib_lookup inside
 * BPF_PROG_TEST_RUN resolves real next hops (the production code runs
 * unchanged; test-run executes in the namespace with ingress_ifindex set).
 *
 *   client 198.18.0.1 / 2001:db8::1 ── fx0 [LB ns] fb0 ── backends 198.18.2.1-3 / 2001:db8:2::1-3
 *   fx0 198.18.0.2, 2001:db8::2          fb0 198.18.2.254, 2001:db8:2::fe (SNAT addresses)
 *   local address 198.18.3.1 (a backend on this node), 203.0.113.0/24 unreachable
 */
import { loadAddon, type NativeAddon, type TestRunResult } from '../native/libbpf.js';
import { loadDatapath, removePins, type LoadedDatapath } from '../datapath/loader.js';
import { DatapathSync } from '../datapath/sync.js';
import { readReasonCounters } from '../datapath/stats.js';
import { encodeFlow, type StatReason } from '../datapath/abi.js';
import { flowHash } from '../datapath/maglev.js';
import type { Lab } from './netns.js';
import type { Backend, Frontend } from '../model/types.js';

export const MAC = {
  client: '02:00:00:00:00:01',
  fx0: '02:00:00:00:f0:00',
  fb0: '02:00:00:00:f0:01',
  vip: '02:00:00:00:aa:01',
  far: '02:00:00:00:00:50',
  backend: (i: number): string => `02:00:00:00:02:0${i}`,
};

export const ADDR = {
  client4: '198.18.0.1', client6: '2001:db8::1',
  snat4: '198.18.2.254', snat6: '2001:db8:2::fe',
  vip4: '198.51.100.10', vip6: '2001:db8:100::10',
  local4: '198.18.3.1',
  far4: '198.18.0.50',
  backend4: (i: number): string => `198.18.2.${i}`,
  backend6: (i: number): string => `2001:db8:2::${i}`,
};

export const PORT_MIN = 40000;
export const PORT_MAX = 40999;

export const XDP = { ABORTED: 0, DROP: 1, PASS: 2, TX: 3, REDIRECT: 4 } as const;

function backends(addrs: string[], port: number, extra: Partial<Backend> = {}): Backend[] {
  return addrs.map((address) => ({ address, port, weight: 1, state: 'active', ...extra }));
}

function frontend(address: string, port: number, protocol: 'TCP' | 'UDP', bes: Backend[], extra: Partial<Frontend> = {}): Frontend {
  return { service: `fx/${address}-${port}`, kind: 'LoadBalancer', address, port, protocol, backends: bes, sessionAffinity: false, sessionAffinityTimeoutSeconds: 0, localOnly: false, sourceRanges: [], ...extra };
}

const B4 = [1, 2, 3].map(ADDR.backend4);
const B6 = [1, 2, 3].map(ADDR.backend6);

/** The frontends every fixture starts from. */
export function baseFrontends(): Frontend[] {
  return [
    frontend(ADDR.vip4, 80, 'TCP', backends(B4, 8080)),
    frontend(ADDR.vip4, 53, 'UDP', backends(B4, 5353)),
    frontend(ADDR.vip6, 80, 'TCP', backends(B6, 8080)),
    frontend(ADDR.vip6, 53, 'UDP', backends(B6, 5353)),
    frontend('198.51.100.11', 80, 'TCP', []),
    frontend('2001:db8:100::11', 80, 'TCP', []),
    frontend('198.51.100.12', 80, 'TCP', backends([ADDR.local4], 8080)),
    frontend('198.51.100.13', 80, 'TCP', backends(['198.18.2.9'], 8080)),
    frontend('2001:db8:100::13', 80, 'TCP', backends(['2001:db8:2::9'], 8080)),
    frontend('198.51.100.14', 80, 'TCP', backends(['203.0.113.50'], 8080)),
    frontend('198.51.100.16', 80, 'TCP', backends([ADDR.backend4(1), ADDR.backend4(2)], 7000), { removedBackendPolicy: 'reset' }),
    frontend('198.51.100.17', 80, 'TCP', backends([ADDR.far4], 8080)),
    frontend('198.51.100.18', 80, 'TCP', backends([ADDR.backend4(1), ADDR.backend4(2), ADDR.backend4(3)], 7100)),
  ];
}

export class FixtureEnv {
  readonly addon: NativeAddon;
  readonly dp: LoadedDatapath;
  readonly sync: DatapathSync;
  readonly nsPath: string;
  readonly ifindex: { fx0: number; fb0: number };
  desired: Frontend[] = baseFrontends();

  private constructor(addon: NativeAddon, dp: LoadedDatapath, nsPath: string, ifindex: { fx0: number; fb0: number }) {
    this.addon = addon;
    this.dp = dp;
    this.nsPath = nsPath;
    this.ifindex = ifindex;
    this.sync = new DatapathSync(addon, dp.maps);
  }

  static async create(lab: Lab, pinDir: string, opts: { nsName?: string; objectPath?: string; conntrack?: number } = {}): Promise<FixtureEnv> {
    const nsName = opts.nsName ?? 'fx';
    await lab.addNamespace(nsName, { forwarding: true });
    const sh = (cmd: string): Promise<unknown> => lab.exec(nsName, ['sh', '-c', cmd]);
    await sh([
      `ip link add fx0 address ${MAC.fx0} type veth peer name fx1`,
      `ip link add fb0 address ${MAC.fb0} type veth peer name fb1`,
      'for i in fx0 fx1 fb0 fb1; do ip link set $i up; done',
      'ip addr add 198.18.0.2/24 dev fx0', 'ip addr add 2001:db8::2/64 dev fx0 nodad',
      `ip addr add ${ADDR.snat4}/24 dev fb0`, `ip addr add ${ADDR.snat6}/64 dev fb0 nodad`,
      `ip addr add ${ADDR.local4}/32 dev lo`,
      'ip route add unreachable 203.0.113.0/24',
      `ip neigh add ${ADDR.client4} lladdr ${MAC.client} dev fx0 nud permanent`,
      `ip neigh add ${ADDR.client6} lladdr ${MAC.client} dev fx0 nud permanent`,
      `ip neigh add ${ADDR.far4} lladdr ${MAC.far} dev fx0 nud permanent`,
      ...[1, 2, 3].flatMap((i) => [
        `ip neigh add ${ADDR.backend4(i)} lladdr ${MAC.backend(i)} dev fb0 nud permanent`,
        `ip neigh add ${ADDR.backend6(i)} lladdr ${MAC.backend(i)} dev fb0 nud permanent`,
      ]),
    ].join(' && '));
    const addon = loadAddon();
    removePins(pinDir);
    const dp = loadDatapath({ addon, pinDir, sizes: { conntrack: opts.conntrack ?? 16384, frontends: 64, backends: 256 }, ...(opts.objectPath ? { objectPath: opts.objectPath } : {}) });
    const nsPath = lab.nsPath(nsName);
    const env = new FixtureEnv(addon, dp, nsPath, { fx0: addon.ifIndex('fx0', nsPath), fb0: addon.ifIndex('fb0', nsPath) });
    env.sync.readState();
    env.sync.setNodeConfig({ snatV4: ADDR.snat4, snatV6: ADDR.snat6, portMin: PORT_MIN, portMax: PORT_MAX });
    // What the agent reads from the namespace's interfaces (ADDR.local4 is the one on lo the fixtures use as a backend).
    env.sync.setLocalAddresses(['198.18.0.2', '2001:db8::2', ADDR.snat4, ADDR.snat6, ADDR.local4]);
    env.apply();
    env.sync.setResponder(ADDR.vip4, env.ifindex.fx0, MAC.vip);
    env.sync.setResponder(ADDR.vip6, env.ifindex.fx0, MAC.vip);
    env.sync.touchLiveness();
    return env;
  }

  apply(desired: Frontend[] = this.desired): void {
    this.desired = desired;
    const r = this.sync.apply(desired);
    if (r.errors.length) throw new Error(`sync errors: ${JSON.stringify(r.errors)}`);
  }

  run(data: Buffer, ingress: 'fx0' | 'fb0' = 'fx0', repeat?: number): TestRunResult {
    const ctx = Buffer.alloc(24); // struct xdp_md: data 0, data_end len, ingress_ifindex
    ctx.writeUInt32LE(data.length, 4);
    ctx.writeUInt32LE(this.ifindex[ingress], 12);
    return this.addon.testRun(this.dp.xdp.fd, { data, ctxIn: ctx, netns: this.nsPath, dataOutSize: data.length + 512, ...(repeat ? { repeat } : {}) });
  }

  counters(): Record<StatReason, bigint> {
    return readReasonCounters(this.dp.maps.stats);
  }

  /** The backend and SNAT port the data path will choose for a new flow (first SNAT try). */
  predict(flow: { src: string; dst: string; sport: number; dport: number; proto: number }, protocol: 'TCP' | 'UDP'): { backend: string; backendPort: number; snatPort: number; backendIndex: number } {
    const hash = flowHash(encodeFlow(flow), this.dp.config.hashSeed);
    const view = this.sync.current();
    // The table as the kernel holds it (its size M was chosen from the backend count).
    const table = this.sync.frontendTable(`${protocol}/${flow.dst}/${flow.dport}`);
    if (!table || table.length === 0) throw new Error(`no table for ${protocol}/${flow.dst}/${flow.dport}`);
    const id = table[hash % table.length]!;
    const be = [...view.backends.values()].find((b) => b.id === id)!;
    const last = be.address.split(/[.:]/).pop()!;
    return { backend: be.address, backendPort: be.port, snatPort: PORT_MIN + (hash % (PORT_MAX - PORT_MIN + 1)), backendIndex: Number(last) };
  }

  close(): void {
    const pin = this.dp.pinDir;
    this.dp.close();
    removePins(pin);
  }
}
