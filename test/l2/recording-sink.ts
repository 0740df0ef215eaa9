/**
 * An L2Sink for unit tests: a responder "map" with a capacity (a write past
 * it fails as the kernel's does, E2BIG), and a record of every frame sent —
 * decoded back to the address it announces, with the time and turn — that
 * also notes any frame sent for an address whose responder entry is not
 * there (which must never happen). Syscall costs can be simulated on a
 * FakeClock.
 */
import type { L2Interface, L2Sink } from '../../src/l2/announcer.js';
import { addressBytes } from '../../src/model/cidr.js';
import type { FakeClock } from './fake-clock.js';

export interface SentFrame {
  at: number;
  iface: string;
  /** Dotted IPv4, or the 32 hex digits of an IPv6 address (see `addressKey`). */
  address: string;
  kind: 'arp-request' | 'arp-reply' | 'na';
  /** Index of the clock turn it was sent in. */
  turn: number;
}

/** The form SentFrame.address takes for `address`. */
export function addressKey(address: string): string {
  return address.includes(':') ? addressBytes(address).toString('hex') : address;
}

function decode(frame: Buffer): { address: string; kind: SentFrame['kind'] } {
  if (frame.readUInt16BE(12) === 0x0806) return { address: [...frame.subarray(28, 32)].join('.'), kind: frame.readUInt16BE(20) === 1 ? 'arp-request' : 'arp-reply' };
  return { address: frame.subarray(62, 78).toString('hex'), kind: 'na' };
}

export interface RecordingSinkOptions {
  /** Offer sendFrames (batch); otherwise only sendFrame. */
  batch?: boolean;
  /** Simulated cost on the fake clock. */
  frameCostMs?: number;
  programCostMs?: number;
  /** sendFrames accepts at most this many frames per call (a full socket buffer). */
  acceptPerCall?: number;
}

export class RecordingSink implements L2Sink {
  readonly responder = new Map<string, string>();
  /** Responder keys in SentFrame form (addressKey|ifindex). */
  private readonly answered = new Set<string>();
  capacity = Infinity;
  readonly sent: SentFrame[] = [];
  readonly violations: string[] = [];
  readonly ops: string[] = [];
  sendFrames?: (iface: L2Interface, frames: Buffer[]) => number;

  constructor(private readonly clock: FakeClock, private readonly opts: RecordingSinkOptions = {}) {
    if (opts.batch) {
      this.sendFrames = (iface, frames) => {
        const n = Math.min(frames.length, opts.acceptPerCall ?? Infinity);
        for (const f of frames.slice(0, n)) this.record(iface, f);
        return n;
      };
    }
  }

  addResponder(address: string, iface: L2Interface): void {
    this.clock.spend(this.opts.programCostMs ?? 0);
    const key = `${address}|${iface.ifindex}`;
    if (!this.responder.has(key) && this.responder.size >= this.capacity) {
      throw new Error('bpf_map_update_elem(ph_responder): Argument list too long (E2BIG)');
    }
    this.responder.set(key, iface.mac);
    this.answered.add(`${addressKey(address)}|${iface.ifindex}`);
    this.ops.push(`add ${address}@${iface.name}`);
  }

  removeResponder(address: string, iface: L2Interface): void {
    this.responder.delete(`${address}|${iface.ifindex}`);
    this.answered.delete(`${addressKey(address)}|${iface.ifindex}`);
    this.ops.push(`del ${address}@${iface.name}`);
  }

  sendFrame(iface: L2Interface, frame: Buffer): void {
    this.record(iface, frame);
  }

  /** Frames announcing `address` (any interface unless given). */
  framesFor(address: string, iface?: string): SentFrame[] {
    const key = addressKey(address);
    return this.sent.filter((s) => s.address === key && (!iface || s.iface === iface));
  }

  private record(iface: L2Interface, frame: Buffer): void {
    this.clock.spend(this.opts.frameCostMs ?? 0);
    const { address, kind } = decode(frame);
    if (!this.answered.has(`${address}|${iface.ifindex}`)) this.violations.push(`${address}@${iface.name} announced without a responder entry`);
    this.sent.push({ at: this.clock.now(), iface: iface.name, address, kind, turn: this.clock.turns.length });
  }
}
