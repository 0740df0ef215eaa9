/**
 * What the kernel holds, read from the agent's pinned maps (never the
 * agent's own word): which expected services have their frontend in
 * `ph_frontends` with the expected number of backends, which of their
 * addresses have an entry in `ph_responder`, and the age of the liveness
 * stamp the XDP responder checks (`ph_liveness`). The maps are opened by
 * their pins (the native addon), so a read costs one batch lookup and no
 * process of the agent's.
 */
import { join } from 'node:path';
import { addon } from '../../src/native/libbpf.js';
import type { BpfMap } from '../../src/native/libbpf.js';
import { MAP, decodeFrontendKey, decodeFrontendValue, decodeLiveness, decodeResponderKey, encodeFrontendKey, u32Key } from '../../src/datapath/abi.js';

export interface ExpectedService {
  /** The service's own port: its frontend is the TCP frontend on this port. */
  port: number;
  /** Ready endpoints: the frontend's backend count once programmed. */
  backends: number;
}

export interface ProgrammedCount {
  expected: number;
  /** Expected frontends present in ph_frontends. */
  frontends: number;
  /** ... with the expected backend count. */
  complete: number;
  /** Expected services whose address has a ph_responder entry. */
  responders: number;
  /** Complete frontend and responder entry: in the data path. */
  programmed: number;
  /** Address of each expected service's frontend, by port. */
  vipByPort: Map<number, string>;
  /** Ports of the programmed services. */
  programmedPorts: Set<number>;
}

type Maps = { frontends: BpfMap; responder: BpfMap; liveness: BpfMap };

export class DatapathWatch {
  private maps?: Maps;

  constructor(readonly pinDir: string) {}

  /** Opens the pinned maps if they exist (again after a restart); false while they do not. */
  open(): boolean {
    this.close();
    try {
      const open = (name: string): BpfMap => addon().openPinnedMap(join(this.pinDir, name));
      this.maps = { frontends: open(MAP.frontends), responder: open(MAP.responder), liveness: open(MAP.liveness) };
      return true;
    } catch {
      this.close();
      return false;
    }
  }

  private ensure(): Maps | undefined {
    if (!this.maps) this.open();
    return this.maps;
  }

  /** How many of `expected` (by port) the data path holds; undefined before the agent pinned its maps. */
  count(expected: ReadonlyMap<number, ExpectedService>): ProgrammedCount | undefined {
    const maps = this.ensure();
    if (!maps) return undefined;
    const vipByPort = new Map<number, string>();
    const completePorts: number[] = [];
    for (const [k, v] of maps.frontends.entries()) {
      let key;
      try {
        key = decodeFrontendKey(k);
      } catch {
        continue;
      }
      const want = expected.get(key.port);
      if (!want || key.protocol !== 'TCP') continue;
      vipByPort.set(key.port, key.address);
      if (decodeFrontendValue(v).backends === want.backends) completePorts.push(key.port);
    }
    const announced = new Set(maps.responder.keys().map((k) => decodeResponderKey(k).address));
    let responders = 0;
    for (const vip of vipByPort.values()) if (announced.has(vip)) responders++;
    const programmedPorts = new Set(completePorts.filter((p) => announced.has(vipByPort.get(p)!)));
    return { expected: expected.size, frontends: vipByPort.size, complete: completePorts.length, responders, programmed: programmedPorts.size, vipByPort, programmedPorts };
  }

  /** The raw value of one frontend (null when absent). */
  frontendValue(vip: string, port: number): Buffer | null {
    const maps = this.ensure();
    return maps ? maps.frontends.lookup(encodeFrontendKey({ address: vip, port, protocol: 'TCP' })) : null;
  }

  /** Milliseconds since the agent last refreshed the responder's liveness stamp (undefined: never, or no maps). */
  livenessAgeMs(): number | undefined {
    const maps = this.ensure();
    const v = maps?.liveness.lookup(u32Key(0));
    if (!v) return undefined;
    const stamp = decodeLiveness(v);
    if (stamp === 0n) return undefined;
    // Both sides are CLOCK_MONOTONIC (libuv's hrtime; the agent writes process.hrtime.bigint()).
    return Number(process.hrtime.bigint() - stamp) / 1e6;
  }

  close(): void {
    if (!this.maps) return;
    for (const m of Object.values(this.maps)) m.close();
    this.maps = undefined;
  }
}
