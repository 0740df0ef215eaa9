/**
 * An IPAM status sink that keeps what it is told in memory, with injected
 * write failures: the IpamController tests' view of what was written.
 */
import type { Condition } from '../../src/model/types.js';
import type { IpamStatusSink, WrittenService } from '../../src/ipam/controller.js';
import type { PoolStatus } from '../../src/ipam/pool-status.js';

export class MemoryStatusSink implements IpamStatusSink {
  readonly services = new Map<string, WrittenService>();
  readonly pools = new Map<string, PoolStatus>();
  readonly calls: string[] = [];
  /** Make the next n writes fail (fault injection). */
  failNext = 0;

  async writeServiceStatus(key: string, ingress: string[], condition: Condition | null): Promise<void> {
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('injected write failure');
    }
    this.calls.push(`service ${key} ${ingress.join(',') || '-'} ${condition ? condition.reason : 'remove'}`);
    this.services.set(key, { ingress: [...ingress], condition });
  }

  async writePoolStatus(name: string, status: PoolStatus): Promise<void> {
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('injected write failure');
    }
    this.calls.push(`pool ${name} ${status.available}`);
    this.pools.set(name, status);
  }
}
