/**
 * The L2 announcer: makes this node answer for the addresses it holds.
 * For each (address, interface) it holds it programs the XDP responder and
 * sends gratuitous ARP / unsolicited NA at once, then every 1.1 s for 5 s.
 *
 * Why repeat: a single gratuitous frame can be lost, and switches/clients
 * that missed it keep a stale MAC for 35–50 s (LAB-FACTS). The 1.1 s spacing
 * avoids landing in the same 1 s rate-limit window of receivers that limit
 * ARP updates (MetalLB chose the same value for the same reason, metallb#172).
 */
import { announcementFrames } from './frames.js';

export interface L2Interface {
  name: string;
  ifindex: number;
  mac: string;
}

export interface Announcement {
  service: string;
  address: string;
  interfaces: L2Interface[];
}

/** Where the announcer's decisions go: the data path's responder map and a packet socket. */
export interface L2Sink {
  addResponder(address: string, iface: L2Interface): void;
  removeResponder(address: string, iface: L2Interface): void;
  sendFrame(iface: L2Interface, frame: Buffer): void;
}

export interface L2AnnouncerOptions {
  /** Spacing of repeated gratuitous frames. */
  repeatIntervalMs?: number;
  /** How long to keep repeating after taking an address. */
  repeatForMs?: number;
  onSent?: (family: 'ipv4' | 'ipv6') => void;
  onError?: (err: Error, address: string, iface: string) => void;
}

interface Held {
  service: string;
  address: string;
  iface: L2Interface;
  since: number;
  timer?: NodeJS.Timeout;
  rounds: number;
}

export class L2Announcer {
  private readonly held = new Map<string, Held>();
  private readonly repeatIntervalMs: number;
  private readonly rounds: number;

  constructor(private readonly sink: L2Sink, private readonly opts: L2AnnouncerOptions = {}) {
    this.repeatIntervalMs = opts.repeatIntervalMs ?? 1100;
    this.rounds = Math.floor((opts.repeatForMs ?? 5000) / this.repeatIntervalMs);
  }

  /** Makes the held set equal to `desired`: new entries are programmed and announced, gone ones withdrawn. */
  update(desired: Announcement[]): void {
    const next = new Map<string, { service: string; address: string; iface: L2Interface }>();
    for (const a of desired) for (const iface of a.interfaces) next.set(`${a.address}|${iface.ifindex}`, { service: a.service, address: a.address, iface });
    for (const [key, h] of this.held) {
      if (next.has(key)) continue;
      clearTimeout(h.timer);
      this.held.delete(key);
      this.guard(h.address, h.iface, () => this.sink.removeResponder(h.address, h.iface));
    }
    for (const [key, want] of next) {
      const h = this.held.get(key);
      if (h) {
        h.service = want.service;
        continue;
      }
      const entry: Held = { ...want, since: Date.now(), rounds: 0 };
      this.held.set(key, entry);
      this.guard(want.address, want.iface, () => this.sink.addResponder(want.address, want.iface));
      this.announce(entry);
    }
  }

  /** Announce again now (e.g. after the interface came back up). */
  reannounce(): void {
    for (const h of this.held.values()) {
      clearTimeout(h.timer);
      h.rounds = 0;
      this.announce(h);
    }
  }

  heldAddresses(): { service: string; address: string; interface: string; since: number }[] {
    return [...this.held.values()].map((h) => ({ service: h.service, address: h.address, interface: h.iface.name, since: h.since }));
  }

  /** Stops repeating and withdraws every responder entry. */
  stop(): void {
    this.update([]);
  }

  private announce(h: Held): void {
    this.guard(h.address, h.iface, () => {
      for (const frame of announcementFrames(h.iface.mac, h.address)) this.sink.sendFrame(h.iface, frame);
      this.opts.onSent?.(h.address.includes(':') ? 'ipv6' : 'ipv4');
    });
    if (h.rounds++ < this.rounds) {
      h.timer = setTimeout(() => this.announce(h), this.repeatIntervalMs);
      h.timer.unref();
    }
  }

  private guard(address: string, iface: L2Interface, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.opts.onError?.(err as Error, address, iface.name);
    }
  }
}
