/**
 * Real BGP routers for the interop tests: bird2, gobgpd and FRR, each run
 * in the foreground as a child of the test inside its own namespace (see
 * LAB-FACTS.md), with fast timers, and read back through its own CLI.
 */
import { chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { run, stopProcess, type Lab } from '../netns.js';

/** A route as the router shows it. */
export interface RouterRoute {
  nextHop: string;
  asPath: number[];
  communities: string[];
  largeCommunities: string[];
  localPref?: number;
  /** bird marks routes kept by graceful restart as stale. */
  stale?: boolean;
}

/** One neighbor as the router should configure it. */
export interface RouterNeighbor {
  address: string;
  asn: number;
  /** Our source address towards it. */
  local: string;
  password?: string;
  /** eBGP multihop (bird only): the neighbor is this many hops away. */
  multihop?: number;
  /** BFD with this neighbor (bird `bfd on` + `protocol bfd`; FRR bfdd + `neighbor X bfd profile`). */
  bfd?: RouterBfd;
}

export interface RouterBfd {
  minRxMs: number;
  minTxMs: number;
  multiplier: number;
}

export interface Router {
  readonly name: string;
  start(): Promise<void>;
  established(neighbor: string): Promise<boolean>;
  route(prefix: string): Promise<RouterRoute | undefined>;
  stop(): Promise<void>;
}

export interface RouterSetup {
  lab: Lab;
  ns: string;
  asn: number;
  routerId: string;
  neighbors: RouterNeighbor[];
}

/** What every router announces to the speaker, to check inbound parsing and counting. */
export const ROUTER_ORIGINATED = ['192.0.2.128/25', '2001:db8:ee::/48'] as const;

function tempDir(tag: string): string {
  return mkdtempSync(join(tmpdir(), `phb-${tag}-`));
}

/** Stops a router's daemons in the given order (SIGTERM, SIGKILL after 2 s) and removes its directory. */
async function stopDaemons(daemons: (ChildProcess | undefined)[], dir: string): Promise<void> {
  for (const d of daemons) if (d) await stopProcess(d, 2000);
  rmSync(dir, { recursive: true, force: true });
}

function communityPair(text: string): string {
  return text;
}

// ---------------------------------------------------------------- bird2

export class Bird implements Router {
  readonly name = 'bird2';
  private readonly dir = tempDir('bird');
  private readonly sock = join(this.dir, 'bird.ctl');
  private child?: ChildProcess;
  log = '';

  /** `extraConfig` goes at the top of bird.conf (e.g. `timeformat route iso long ms;`). */
  constructor(private readonly setup: RouterSetup, private readonly extraConfig = '') {}

  /** birdc with arbitrary arguments. */
  birdc(args: string[]): Promise<{ stdout: string; code: number }> {
    return run(['birdc', '-s', this.sock, ...args], { allowFail: true, timeoutMs: 60_000 });
  }

  private protoName(n: RouterNeighbor): string {
    return `p_${n.address.replace(/[.:]/g, '_')}`;
  }

  async start(): Promise<void> {
    const s = this.setup;
    const protocols = s.neighbors.map((n) => `
protocol bgp ${this.protoName(n)} {
  local ${n.local} as ${s.asn};
  neighbor ${n.address} as ${n.asn};
  hold time 9; keepalive time 3;
  connect delay time 1; connect retry time 1; error wait time 1,5;
  graceful restart on;
  ${n.asn === s.asn ? 'direct;' : ''}
  ${n.password ? `password "${n.password}";` : ''}
  ${n.multihop ? `multihop ${n.multihop};` : ''}
  ${n.bfd ? 'bfd on;' : ''}
  ipv4 { import all; export where source = RTS_STATIC; };
  ipv6 { import all; export where source = RTS_STATIC; };
}`).join('\n');
    const bfd = s.neighbors.find((n) => n.bfd)?.bfd;
    // bird takes BFD timers from protocol bfd's interface options (one set for all neighbors here).
    const bfdProtocol = bfd ? `protocol bfd {
  interface "*" { min rx interval ${bfd.minRxMs} ms; min tx interval ${bfd.minTxMs} ms; multiplier ${bfd.multiplier}; };
}` : '';
    const conf = `router id ${s.routerId};
${this.extraConfig}
log stderr all;
${bfdProtocol}
protocol device { scan time 10; }
protocol direct { ipv4; ipv6; }
protocol static { ipv4; route ${ROUTER_ORIGINATED[0]} blackhole; }
protocol static { ipv6; route ${ROUTER_ORIGINATED[1]} blackhole; }
${protocols}
`;
    const path = join(this.dir, 'bird.conf');
    writeFileSync(path, conf);
    this.child = s.lab.spawn(s.ns, ['bird', '-f', '-c', path, '-s', this.sock, '-P', join(this.dir, 'bird.pid')]);
    this.child.stderr!.on('data', (d: Buffer) => { this.log = (this.log + d.toString()).slice(-20_000); });
    for (let i = 0; i < 50; i++) {
      const r = await run(['birdc', '-s', this.sock, 'show', 'status'], { allowFail: true });
      if (r.code === 0 && r.stdout.includes('Daemon is up')) return;
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error(`bird did not start:\n${this.log}`);
  }

  async established(neighbor: string): Promise<boolean> {
    const n = this.setup.neighbors.find((x) => x.address === neighbor)!;
    const r = await run(['birdc', '-s', this.sock, 'show', 'protocols', 'all', this.protoName(n)], { allowFail: true });
    return /BGP state:\s+Established/.test(r.stdout);
  }

  /** BFD session state towards `neighbor` as `show bfd sessions` prints it (Up, Down, Init, ...), or undefined. */
  async bfdState(neighbor: string): Promise<string | undefined> {
    const r = await run(['birdc', '-s', this.sock, 'show', 'bfd', 'sessions'], { allowFail: true });
    const line = r.stdout.split('\n').find((l) => l.trim().split(/\s+/)[0] === neighbor);
    return line?.trim().split(/\s+/)[2];
  }

  /** Raw `show protocols all` text, for assertions on received state. */
  async protocolText(neighbor: string): Promise<string> {
    const n = this.setup.neighbors.find((x) => x.address === neighbor)!;
    return (await run(['birdc', '-s', this.sock, 'show', 'protocols', 'all', this.protoName(n)], { allowFail: true })).stdout;
  }

  async route(prefix: string): Promise<RouterRoute | undefined> {
    const table = prefix.includes(':') ? 'master6' : 'master4';
    const r = await run(['birdc', '-s', this.sock, 'show', 'route', 'table', table, 'all', prefix], { allowFail: true });
    if (r.code !== 0 || !r.stdout.includes(prefix)) return undefined;
    const text = r.stdout;
    const field = (name: string): string | undefined => new RegExp(`BGP\\.${name}:[ \\t]*(.*)`).exec(text)?.[1]?.trim();
    const nextHop = field('next_hop');
    if (!nextHop) return undefined;
    const communities = [...(field('community') ?? '').matchAll(/\((\d+),(\d+)\)/g)].map((m) => `${m[1]}:${m[2]}`);
    const large = [...(field('large_community') ?? '').matchAll(/\((\d+), (\d+), (\d+)\)/g)].map((m) => `${m[1]}:${m[2]}:${m[3]}`);
    const lp = field('local_pref');
    return {
      nextHop: nextHop.split(/\s+/)[0]!,
      asPath: (field('as_path') ?? '').split(/\s+/).filter(Boolean).map(Number),
      communities: communities.map(communityPair),
      largeCommunities: large,
      ...(lp !== undefined ? { localPref: Number(lp) } : {}),
      stale: /\bstale\b/i.test(text) || /\(stale\)/.test(text),
    };
  }

  stop(): Promise<void> {
    return stopDaemons([this.child], this.dir);
  }
}

// ---------------------------------------------------------------- GoBGP

export class GoBgp implements Router {
  readonly name = 'gobgpd';
  private readonly dir = tempDir('gobgp');
  private child?: ChildProcess;
  log = '';

  constructor(private readonly setup: RouterSetup) {}

  private cli(args: string[]): Promise<{ stdout: string; code: number }> {
    return this.setup.lab.exec(this.setup.ns, ['gobgp', '-u', '127.0.0.1', '-p', '50051', ...args], { allowFail: true });
  }

  async start(): Promise<void> {
    const s = this.setup;
    const neighbors = s.neighbors.map((n) => `
[[neighbors]]
  [neighbors.config]
    neighbor-address = "${n.address}"
    peer-as = ${n.asn}
    ${n.password ? `auth-password = "${n.password}"` : ''}
  [neighbors.transport.config]
    local-address = "${n.local}"
  [neighbors.timers.config]
    hold-time = 9
    keepalive-interval = 3
    connect-retry = 5
  [neighbors.graceful-restart.config]
    enabled = true
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
`).join('\n');
    const conf = `[global.config]
  as = ${s.asn}
  router-id = "${s.routerId}"
  port = 179
${neighbors}`;
    const path = join(this.dir, 'gobgpd.toml');
    writeFileSync(path, conf);
    this.child = s.lab.spawn(s.ns, ['gobgpd', '-f', path, '--api-hosts', '127.0.0.1:50051', '--pprof-disable', '-p']);
    const collect = (d: Buffer): void => { this.log = (this.log + d.toString()).slice(-20_000); };
    this.child.stderr!.on('data', collect);
    this.child.stdout!.on('data', collect);
    for (let i = 0; i < 100; i++) {
      const r = await this.cli(['neighbor', '-j']);
      if (r.code === 0 && r.stdout.trim().startsWith('[')) {
        await this.cli(['global', 'rib', '-a', 'ipv4', 'add', ROUTER_ORIGINATED[0]]);
        await this.cli(['global', 'rib', '-a', 'ipv6', 'add', ROUTER_ORIGINATED[1]]);
        return;
      }
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error(`gobgpd did not start:\n${this.log}`);
  }

  async established(neighbor: string): Promise<boolean> {
    const r = await this.cli(['neighbor', '-j']);
    if (r.code !== 0) return false;
    const list = JSON.parse(r.stdout) as { conf: { neighbor_address: string }; state: { session_state: number | string } }[];
    const n = list.find((x) => x.conf.neighbor_address === neighbor);
    // session_state 6 = ESTABLISHED in GoBGP's API enum.
    return n?.state.session_state === 6 || n?.state.session_state === 'established' || n?.state.session_state === 'ESTABLISHED';
  }

  async route(prefix: string): Promise<RouterRoute | undefined> {
    const r = await this.cli(['global', 'rib', '-a', prefix.includes(':') ? 'ipv6' : 'ipv4', prefix, '-j']);
    if (r.code !== 0 || !r.stdout.trim()) return undefined;
    const table = JSON.parse(r.stdout) as Record<string, { attrs: { type: number; [k: string]: unknown }[] }[]>;
    const path = table[prefix]?.[0];
    if (!path) return undefined;
    let nextHop = '';
    let asPath: number[] = [];
    let communities: string[] = [];
    let large: string[] = [];
    let localPref: number | undefined;
    for (const a of path.attrs) {
      if (a.type === 3) nextHop = a.nexthop as string;
      if (a.type === 14) nextHop = (a.nexthop as string) ?? ((a.value as { nexthop?: string })?.nexthop ?? nextHop);
      if (a.type === 2) asPath = ((a.as_paths as { asns: number[] }[]) ?? []).flatMap((s) => s.asns);
      if (a.type === 5) localPref = a.value as number;
      if (a.type === 8) communities = ((a.communities as number[]) ?? []).map((c) => `${Math.floor(c / 65536)}:${c % 65536}`);
      if (a.type === 32) {
        large = ((a.value as { ASN: number; LocalData1: number; LocalData2: number }[]) ?? [])
          .map((l) => `${l.ASN}:${l.LocalData1}:${l.LocalData2}`);
      }
    }
    return { nextHop, asPath, communities, largeCommunities: large, ...(localPref !== undefined ? { localPref } : {}), stale: (path as { stale?: boolean }).stale === true };
  }

  async rawRoute(prefix: string): Promise<string> {
    return (await this.cli(['global', 'rib', '-a', prefix.includes(':') ? 'ipv6' : 'ipv4', prefix, '-j'])).stdout;
  }

  async rawRib(family: 'ipv4' | 'ipv6'): Promise<string> {
    return (await this.cli(['global', 'rib', '-a', family, '-j'])).stdout;
  }

  stop(): Promise<void> {
    return stopDaemons([this.child], this.dir);
  }
}

// ---------------------------------------------------------------- FRR

export class Frr implements Router {
  readonly name = 'frr';
  private readonly dir = tempDir('frr');
  private children: ChildProcess[] = [];
  log = '';

  constructor(private readonly setup: RouterSetup) {}

  vtysh(cmd: string): Promise<{ stdout: string; code: number }> {
    return run(['vtysh', '--vty_socket', this.dir, '-c', cmd], { allowFail: true });
  }

  async start(): Promise<void> {
    const s = this.setup;
    const nb = s.neighbors;
    const conf = `frr defaults traditional
hostname phb-frr
log stdout debugging
!
ip prefix-list PHB-OWN seq 5 permit ${ROUTER_ORIGINATED[0]}
ipv6 prefix-list PHB-OWN6 seq 5 permit ${ROUTER_ORIGINATED[1]}
!
router bgp ${s.asn}
 bgp router-id ${s.routerId}
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 no bgp network import-check
 bgp graceful-restart
${nb.map((n) => ` neighbor ${n.address} remote-as ${n.asn}
 neighbor ${n.address} update-source ${n.local}
 neighbor ${n.address} timers 3 9
 neighbor ${n.address} timers connect 1
 neighbor ${n.address} advertisement-interval 0
${n.password ? ` neighbor ${n.address} password ${n.password}\n` : ''}${n.bfd ? ` neighbor ${n.address} bfd\n neighbor ${n.address} bfd profile pharos\n` : ''}`).join('')} !
 address-family ipv4 unicast
  network ${ROUTER_ORIGINATED[0]}
${nb.map((n) => `  neighbor ${n.address} activate\n  neighbor ${n.address} prefix-list PHB-OWN out\n`).join('')} exit-address-family
 !
 address-family ipv6 unicast
  network ${ROUTER_ORIGINATED[1]}
${nb.map((n) => `  neighbor ${n.address} activate\n  neighbor ${n.address} prefix-list PHB-OWN6 out\n`).join('')} exit-address-family
!
`;
    const zconf = join(this.dir, 'zebra.conf');
    const bconf = join(this.dir, 'bgpd.conf');
    writeFileSync(zconf, 'hostname phb-frr-zebra\n');
    writeFileSync(bconf, conf);
    const frrIds = (await run(['id', '-u', 'frr'])).stdout.trim();
    const frrGid = (await run(['id', '-g', 'frr'])).stdout.trim();
    for (const p of [this.dir, zconf, bconf]) chownSync(p, Number(frrIds), Number(frrGid));
    const zsock = join(this.dir, 'zserv.api');
    const common = ['--vty_socket', this.dir, '-A', '127.0.0.1', '-P', '0', '-z', zsock];
    const zebra = s.lab.spawn(s.ns, ['/usr/lib/frr/zebra', '-f', zconf, '-i', join(this.dir, 'zebra.pid'), ...common]);
    this.children.push(zebra);
    const collect = (d: Buffer): void => { this.log = (this.log + d.toString()).slice(-40_000); };
    zebra.stderr!.on('data', collect);
    for (let i = 0; i < 50; i++) {
      if ((await run(['test', '-S', zsock], { allowFail: true })).code === 0) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    const bfd = nb.find((n) => n.bfd)?.bfd;
    if (bfd) {
      // bfdd in its own right (bgpd registers its peers with it through zebra), with its own control socket.
      const fconf = join(this.dir, 'bfdd.conf');
      writeFileSync(fconf, `hostname phb-frr-bfdd\nbfd\n profile pharos\n  receive-interval ${bfd.minRxMs}\n  transmit-interval ${bfd.minTxMs}\n  detect-multiplier ${bfd.multiplier}\n !\n!\n`);
      chownSync(fconf, Number(frrIds), Number(frrGid));
      const bfdd = s.lab.spawn(s.ns, ['/usr/lib/frr/bfdd', '-f', fconf, '-i', join(this.dir, 'bfdd.pid'), '--bfdctl', join(this.dir, 'bfdd.sock'), ...common]);
      this.children.push(bfdd);
      bfdd.stderr!.on('data', collect);
      bfdd.stdout!.on('data', collect);
    }
    const bgpd = s.lab.spawn(s.ns, ['/usr/lib/frr/bgpd', '-f', bconf, '-i', join(this.dir, 'bgpd.pid'), ...common]);
    this.children.push(bgpd);
    bgpd.stderr!.on('data', collect);
    bgpd.stdout!.on('data', collect);
    for (let i = 0; i < 100; i++) {
      const r = await this.vtysh('show bgp summary json');
      if (r.code === 0 && r.stdout.trim().startsWith('{')) return;
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error(`FRR did not start:\n${this.log}`);
  }

  async established(neighbor: string): Promise<boolean> {
    const r = await this.vtysh(`show bgp neighbors ${neighbor} json`);
    if (r.code !== 0) return false;
    try {
      const j = JSON.parse(r.stdout) as Record<string, { bgpState?: string }>;
      return j[neighbor]?.bgpState === 'Established';
    } catch {
      return false;
    }
  }

  /** bfdd's state of the session with `neighbor` (up, down, init, ...), or undefined. */
  async bfdState(neighbor: string): Promise<string | undefined> {
    const r = await this.vtysh('show bfd peers json');
    if (r.code !== 0) return undefined;
    try {
      return (JSON.parse(r.stdout) as { peer: string; status: string }[]).find((p) => p.peer === neighbor)?.status;
    } catch {
      return undefined;
    }
  }

  async route(prefix: string): Promise<RouterRoute | undefined> {
    const fam = prefix.includes(':') ? 'ipv6' : 'ipv4';
    const r = await this.vtysh(`show bgp ${fam} unicast ${prefix} json`);
    if (r.code !== 0) return undefined;
    let j: { paths?: Record<string, unknown>[] };
    try {
      j = JSON.parse(r.stdout);
    } catch {
      return undefined;
    }
    const p = j.paths?.[0] as {
      nexthops?: { ip: string; scope?: string }[]; aspath?: { string: string }; community?: { string: string };
      largeCommunity?: { string: string }; locPrf?: number; stale?: boolean;
    } | undefined;
    if (!p) return undefined;
    const global = p.nexthops?.find((n) => n.scope !== 'link-local') ?? p.nexthops?.[0];
    return {
      nextHop: global?.ip ?? '',
      asPath: (p.aspath?.string ?? '').split(/\s+/).filter((x) => /^\d+$/.test(x)).map(Number),
      communities: (p.community?.string ?? '').split(/\s+/).filter(Boolean).map((c) => ({ noExport: 'no-export', noAdvertise: 'no-advertise' } as Record<string, string>)[c] ?? c),
      largeCommunities: (p.largeCommunity?.string ?? '').split(/\s+/).filter(Boolean),
      ...(p.locPrf !== undefined ? { localPref: p.locPrf } : {}),
      ...(p.stale ? { stale: true } : {}),
    };
  }

  stop(): Promise<void> {
    return stopDaemons(this.children.reverse(), this.dir);
  }
}
