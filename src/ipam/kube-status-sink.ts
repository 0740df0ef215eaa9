/**
 * The IPAM status sink for Kubernetes: Service status (ingress + our
 * condition, other controllers' conditions kept) and pool status, written
 * through KubeWriter as merge patches, only while this agent leads.
 */
import type { Condition } from '../model/types.js';
import type { Store } from '../store/store.js';
import type { IpamStatusSink } from './controller.js';
import { IPAM_CONDITION } from './allocator.js';
import { ciliumPoolConditions, type PoolStatus } from './pool-status.js';
import type { KubeWriter } from '../sinks/kube/writer.js';

export class NotLeaderError extends Error {
  override name = 'NotLeaderError';
}

function rawConditions(list: unknown): Condition[] {
  return Array.isArray(list) ? (list as Condition[]).filter((c) => c && typeof c.type === 'string') : [];
}

export class KubeStatusSink implements IpamStatusSink {
  constructor(
    private readonly writer: KubeWriter,
    private readonly store: Store,
    private readonly isLeader: () => boolean,
  ) {}

  async writeServiceStatus(key: string, ingress: string[], condition: Condition | null): Promise<void> {
    if (!this.isLeader()) throw new NotLeaderError('not the IPAM leader: status not written');
    const [namespace, name] = key.split('/') as [string, string];
    const svc = this.store.get('Service', key);
    const build = (others: Condition[]): unknown => ({
      // No address: no ingress list at all (null deletes it in a merge patch), as the API server keeps it;
      // `{.status.loadBalancer.ingress[0].ip}` then prints nothing instead of failing.
      loadBalancer: { ingress: ingress.length ? ingress.map((ip) => ({ ip })) : null },
      conditions: [...others.filter((c) => c.type !== IPAM_CONDITION), ...(condition ? [condition] : [])],
    });
    await this.writer.patchServiceStatus(namespace, name, build(svc?.status.conditions ?? []), {
      ...(svc?.meta.resourceVersion ? { resourceVersion: svc.meta.resourceVersion } : {}),
      recompute: (fresh) => (this.isLeader() ? build(rawConditions(fresh?.status?.conditions)) : null),
    });
  }

  async writePoolStatus(name: string, status: PoolStatus): Promise<void> {
    if (!this.isLeader()) throw new NotLeaderError('not the IPAM leader: status not written');
    const pool = this.store.get('LoadBalancerIPPool', name);
    const flavor = pool?.flavor ?? 'pharos';
    // Cilium's pool has no count fields: its printer columns read Cilium's own conditions.
    const body = flavor === 'cilium'
      ? { conditions: [...status.conditions, ...ciliumPoolConditions(status)] }
      : { conditions: status.conditions, total: status.total, used: status.used, available: status.available };
    await this.writer.patchPoolStatus(name, body, { flavor });
  }
}
