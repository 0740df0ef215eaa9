/**
 * A scripted BGP peer on 127.0.0.1 for session tests: accepts connections
 * and lets the test read decoded messages and write arbitrary bytes,
 * including malformed ones.
 */
import net from 'node:net';
import { BgpSession, type SessionConfig, type SessionState } from '../../../src/bgp/session.js';
import {
  AS_TRANS,
  MessageReader,
  decodeMessage,
  encodeKeepalive,
  encodeOpen,
  type BgpMessage,
  type Capabilities,
  type DecodeContext,
} from '../../../src/bgp/codec.js';

export class PeerConnection {
  private readonly reader = new MessageReader();
  private readonly queue: BgpMessage[] = [];
  private waiter?: () => void;
  ended = false;
  readonly closed: Promise<void>;
  raw: Buffer[] = [];

  constructor(readonly socket: net.Socket, private readonly ctx: DecodeContext = { fourOctetAs: true }) {
    this.closed = new Promise((resolve) => socket.once('close', () => { this.ended = true; this.waiter?.(); resolve(); }));
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      this.reader.push(chunk);
      for (let m = this.reader.next(); m; m = this.reader.next()) {
        this.raw.push(Buffer.from(m));
        this.queue.push(decodeMessage(m, this.ctx));
      }
      this.waiter?.();
    });
  }

  /** The next message (of `kind`, skipping KEEPALIVEs unless asked for). */
  async next<K extends BgpMessage['kind']>(kind?: K, timeoutMs = 5000): Promise<Extract<BgpMessage, { kind: K }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.queue.length) {
        const m = this.queue.shift()!;
        if (m.kind === 'keepalive' && kind !== 'keepalive') continue;
        if (kind && m.kind !== kind) throw new Error(`expected ${kind}, got ${m.kind}${m.kind === 'notification' ? ` ${m.code}/${m.subcode}` : ''}`);
        return m as Extract<BgpMessage, { kind: K }>;
      }
      if (this.ended) throw new Error(`connection closed while waiting for ${kind ?? 'a message'}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${kind ?? 'message'} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => { clearTimeout(timer); resolve(); };
      });
      this.waiter = undefined;
    }
  }

  /** The next message of `kind`, discarding anything else before it. */
  async until<K extends BgpMessage['kind']>(kind: K, timeoutMs = 5000): Promise<Extract<BgpMessage, { kind: K }>> {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; i < 100_000; i++) {
      const m = await this.next(undefined, Math.max(1, deadline - Date.now()));
      if (m.kind === kind) return m as Extract<BgpMessage, { kind: K }>;
    }
    throw new Error(`no ${kind}`);
  }

  /** Messages received so far and not consumed, then clears them. */
  drain(): BgpMessage[] {
    return this.queue.splice(0);
  }

  send(...bufs: Buffer[]): void {
    for (const b of bufs) this.socket.write(b);
  }

  /** Replies to the speaker's OPEN with ours and a KEEPALIVE, and waits for its KEEPALIVE. */
  async establish(opts: { asn: number; bgpId?: string; holdTime?: number; capabilities?: Partial<Capabilities> } = { asn: 65000 }): Promise<void> {
    await this.next('open');
    this.send(peerOpen(opts));
    this.send(encodeKeepalive());
    await this.next('keepalive');
  }

  close(): void {
    this.socket.destroy();
  }
}

export function peerOpen(opts: { asn: number; bgpId?: string; holdTime?: number; capabilities?: Partial<Capabilities> }): Buffer {
  return encodeOpen({
    version: 4,
    myAs: opts.asn > 0xffff ? AS_TRANS : opts.asn,
    holdTime: opts.holdTime ?? 90,
    bgpId: opts.bgpId ?? '192.0.2.200',
    capabilities: {
      multiprotocol: [{ afi: 1, safi: 1 }, { afi: 2, safi: 1 }],
      routeRefresh: true,
      enhancedRouteRefresh: false,
      fourOctetAs: opts.asn,
      unknown: [],
      ...opts.capabilities,
    },
  });
}

export class ScriptedPeer {
  private readonly server = net.createServer();
  private readonly pending: PeerConnection[] = [];
  private waiter?: () => void;
  readonly connections: PeerConnection[] = [];
  readonly acceptedAt: number[] = [];
  port = 0;

  async start(): Promise<number> {
    this.server.on('connection', (s) => {
      const c = new PeerConnection(s);
      this.connections.push(c);
      this.acceptedAt.push(Date.now());
      this.pending.push(c);
      this.waiter?.();
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this.port;
  }

  async accept(timeoutMs = 5000): Promise<PeerConnection> {
    const deadline = Date.now() + timeoutMs;
    while (!this.pending.length) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no connection within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => { clearTimeout(timer); resolve(); };
      });
      this.waiter = undefined;
    }
    return this.pending.shift()!;
  }

  async stop(): Promise<void> {
    for (const c of this.connections) c.close();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/**
 * A BgpSession (AS 65001) connected to a fresh ScriptedPeer (AS 65000) and
 * Established; both are stopped at teardown. `extra` adds session options.
 */
export async function establishedWithPeer(t: { teardown(fn: () => unknown): void }, extra: Partial<SessionConfig> = {}): Promise<{ session: BgpSession; c: PeerConnection; peer: ScriptedPeer }> {
  const peer = new ScriptedPeer();
  const port = await peer.start();
  const session = new BgpSession({ localAsn: 65001, peerAsn: 65000, routerId: '192.0.2.100', peerAddress: '127.0.0.1', peerPort: port, holdTimeSeconds: 90, connectRetrySeconds: 0.2, families: [1, 2], ...extra });
  t.teardown(async () => { session.stop(); await peer.stop(); });
  session.start();
  const c = await peer.accept();
  await c.establish({ asn: 65000 });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not Established (${session.state})`)), 5000);
    const check = (s: SessionState): void => { if (s === 'Established') { clearTimeout(timer); resolve(); } };
    if (session.state === 'Established') check('Established');
    session.on('state', check);
  });
  return { session, c, peer };
}
