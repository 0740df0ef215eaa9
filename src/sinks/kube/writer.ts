/**
 * Everything pharos writes to Kubernetes: Service status, pool status, and
 * Leases. Every write waits for a token (QPS/burst), has a deadline, and is
 * counted by kind, verb and outcome.
 *
 * Status writes are JSON merge patches on the `/status` subresource (the
 * library's default Content-Type for patch is json-patch, so it is set
 * explicitly). With a known resourceVersion the patch carries it, so a write
 * based on stale state fails with 409; the writer then re-reads and retries
 * (optionally recomputing the status from the fresh object).
 *
 * Lease conflicts are not retried: for leader election a 409 is an answer
 * (someone else wrote first), surfaced as WriteConflictError.
 */
import {
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderMiddleware,
  V1MicroTime,
  type KubeConfig,
  type V1Lease,
} from '@kubernetes/client-node';
import { TokenBucket } from './rate-limit.js';

export interface KubeWriterOptions {
  kc: KubeConfig;
  /** Namespace of the Leases. Default pharos-system. */
  namespace?: string;
  /** Default 20. */
  qps?: number;
  /** Default 40. */
  burst?: number;
  /** Per request. Default 10 s. */
  timeoutMs?: number;
  /** Re-read-and-retry rounds after a 409 on a status write. Default 5. */
  maxConflictRetries?: number;
  /** Called after every write attempt (for metrics). */
  onWrite?: (w: WriteRecord) => void;
}

export type WriteOutcome = 'ok' | 'conflict' | 'notfound' | 'error';

export interface WriteRecord {
  kind: 'Service' | 'LoadBalancerIPPool' | 'Lease' | 'Event';
  verb: 'patch' | 'create' | 'update' | 'delete';
  outcome: WriteOutcome;
  ms: number;
}

/** 409 from the API server: the object changed (or exists) since the caller's read. */
export class WriteConflictError extends Error {
  override name = 'WriteConflictError';
}

export class NotFoundError extends Error {
  override name = 'NotFoundError';
}

export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: Date;
  renewTime?: Date;
  leaseTransitions?: number;
}

export interface LeaseRecord extends LeaseSpec {
  name: string;
  namespace: string;
  resourceVersion: string;
}

/** An event about one object (core/v1, as `kubectl describe` lists them). */
export interface KubeEvent {
  namespace: string;
  /** The object's name and kind. */
  name: string;
  kind: string;
  uid?: string;
  type: 'Normal' | 'Warning';
  /** A word, e.g. FrontendMapFull. */
  reason: string;
  message: string;
  /** The reporting node. */
  node: string;
}

export interface StatusWriteOptions {
  /** The resourceVersion the status was computed from; enables conflict detection. */
  resourceVersion?: string;
  /** On conflict, rebuild the status from the fresh object (null: give up, nothing written). */
  recompute?: (fresh: any) => any | null;
}

function httpCode(e: any): number | undefined {
  return typeof e?.code === 'number' ? e.code : typeof e?.statusCode === 'number' ? e.statusCode : undefined;
}

const poolApis = {
  pharos: { group: 'lb.pharos.io', version: 'v1alpha1', plural: 'loadbalancerippools' },
  cilium: { group: 'cilium.io', version: 'v2alpha1', plural: 'ciliumloadbalancerippools' },
};

export class KubeWriter {
  private readonly core: CoreV1Api;
  private readonly coordination: CoordinationV1Api;
  private readonly custom: CustomObjectsApi;
  private readonly bucket: TokenBucket;
  private readonly timeoutMs: number;
  private readonly maxConflictRetries: number;
  readonly namespace: string;
  /** `Kind verb outcome` → count, e.g. `Lease update conflict`. */
  readonly counters: Record<string, number> = {};

  constructor(private readonly opts: KubeWriterOptions) {
    this.core = opts.kc.makeApiClient(CoreV1Api);
    this.coordination = opts.kc.makeApiClient(CoordinationV1Api);
    this.custom = opts.kc.makeApiClient(CustomObjectsApi);
    this.bucket = new TokenBucket(opts.qps ?? 20, opts.burst ?? 40);
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.maxConflictRetries = opts.maxConflictRetries ?? 5;
    this.namespace = opts.namespace ?? 'pharos-system';
  }

  /** Request options: a header (Content-Type for patches) and a deadline. */
  private options(header: [string, string] = ['Accept', 'application/json']): any {
    const mw = setHeaderMiddleware(header[0], header[1]);
    const timeoutMs = this.timeoutMs;
    return {
      middleware: [
        {
          pre: (ctx: any) => {
            ctx.setSignal(AbortSignal.timeout(timeoutMs));
            return mw.pre(ctx);
          },
          post: (ctx: any) => mw.post(ctx),
        },
      ],
      middlewareMergeStrategy: 'append',
    };
  }

  private async write<T>(kind: WriteRecord['kind'], verb: WriteRecord['verb'], call: () => Promise<T>): Promise<T> {
    await this.bucket.take();
    const start = performance.now();
    let outcome: WriteOutcome = 'ok';
    try {
      return await call();
    } catch (e) {
      const code = httpCode(e);
      outcome = code === 409 ? 'conflict' : code === 404 ? 'notfound' : 'error';
      if (code === 409) throw new WriteConflictError(`${kind} ${verb}: conflict (${reasonOf(e)})`);
      if (code === 404) throw new NotFoundError(`${kind} ${verb}: not found`);
      throw e;
    } finally {
      const key = `${kind} ${verb} ${outcome}`;
      this.counters[key] = (this.counters[key] ?? 0) + 1;
      this.opts.onWrite?.({ kind, verb, outcome, ms: performance.now() - start });
    }
  }

  /** Merge-patch a status, re-reading and retrying on 409. Returns the written object, or undefined when recompute gave up. */
  private async patchStatusWithRetry(
    kind: 'Service' | 'LoadBalancerIPPool',
    status: any,
    opts: StatusWriteOptions,
    patch: (body: any) => Promise<any>,
    read: () => Promise<any>,
  ): Promise<any> {
    let rv = opts.resourceVersion;
    let desired = status;
    for (let attempt = 0; ; attempt++) {
      const body = rv ? { metadata: { resourceVersion: rv }, status: desired } : { status: desired };
      try {
        return await this.write(kind, 'patch', () => patch(body));
      } catch (e) {
        if (!(e instanceof WriteConflictError) || attempt >= this.maxConflictRetries) throw e;
      }
      const fresh = await read();
      rv = fresh?.metadata?.resourceVersion;
      if (opts.recompute) {
        desired = opts.recompute(fresh);
        if (desired === null) return undefined;
      }
    }
  }

  /** `status` is the raw Service status (`{ loadBalancer: { ingress: [...] }, conditions: [...] }`). */
  patchServiceStatus(namespace: string, name: string, status: any, opts: StatusWriteOptions = {}): Promise<any> {
    return this.patchStatusWithRetry(
      'Service',
      status,
      opts,
      (body) => this.core.patchNamespacedServiceStatus({ name, namespace, body }, this.options(['Content-Type', PatchStrategy.MergePatch])),
      () => this.core.readNamespacedService({ name, namespace }, this.options()),
    );
  }

  /** Pool status (conditions) on the pharos or Cilium pool CRD. */
  patchPoolStatus(name: string, status: any, opts: StatusWriteOptions & { flavor?: 'pharos' | 'cilium' } = {}): Promise<any> {
    const api = poolApis[opts.flavor ?? 'pharos'];
    return this.patchStatusWithRetry(
      'LoadBalancerIPPool',
      status,
      opts,
      (body) => this.custom.patchClusterCustomObjectStatus({ ...api, name, body }, this.options(['Content-Type', PatchStrategy.MergePatch])),
      () => this.custom.getClusterCustomObject({ ...api, name }, this.options()),
    );
  }

  /** One event (not aggregated: callers send one per problem, not per pass). */
  async createEvent(e: KubeEvent): Promise<void> {
    const now = new Date();
    const body = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { generateName: `${e.name}.`, namespace: e.namespace },
      involvedObject: { apiVersion: 'v1', kind: e.kind, name: e.name, namespace: e.namespace, ...(e.uid ? { uid: e.uid } : {}) },
      type: e.type,
      reason: e.reason,
      message: e.message,
      source: { component: 'pharos', host: e.node },
      reportingComponent: 'lb.pharos.io/pharos',
      reportingInstance: e.node,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    await this.write('Event', 'create', () => this.core.createNamespacedEvent({ namespace: e.namespace, body }, this.options()));
  }

  // ------------------------------------------------------------ Leases

  /** Reads are not rate-limited (only writes are). */
  async getLease(name: string): Promise<LeaseRecord | undefined> {
    try {
      return leaseRecord(await this.coordination.readNamespacedLease({ name, namespace: this.namespace }, this.options()));
    } catch (e) {
      if (httpCode(e) === 404) return undefined;
      throw e;
    }
  }

  /** Create; WriteConflictError when it already exists. */
  async createLease(name: string, spec: LeaseSpec, labels?: Record<string, string>): Promise<LeaseRecord> {
    const body: V1Lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name, namespace: this.namespace, ...(labels ? { labels } : {}) },
      spec: leaseSpecBody(spec),
    };
    return leaseRecord(await this.write('Lease', 'create', () => this.coordination.createNamespacedLease({ namespace: this.namespace, body }, this.options())));
  }

  /** Replace the spec, guarded by `current.resourceVersion`; WriteConflictError when someone wrote first. */
  async updateLease(current: LeaseRecord, spec: LeaseSpec): Promise<LeaseRecord> {
    const body: V1Lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: current.name, namespace: current.namespace, resourceVersion: current.resourceVersion },
      spec: leaseSpecBody(spec),
    };
    return leaseRecord(
      await this.write('Lease', 'update', () => this.coordination.replaceNamespacedLease({ name: current.name, namespace: current.namespace, body }, this.options())),
    );
  }

  /**
   * Give a lease up at once (clean shutdown): holder cleared and a 1 s
   * duration, as client-go's leader election does, so the next candidate
   * need not wait out the old duration.
   */
  releaseLease(current: LeaseRecord): Promise<LeaseRecord> {
    const now = new Date();
    return this.updateLease(current, {
      holderIdentity: undefined,
      leaseDurationSeconds: 1,
      acquireTime: now,
      renewTime: now,
      leaseTransitions: current.leaseTransitions,
    });
  }

  async deleteLease(name: string): Promise<void> {
    await this.write('Lease', 'delete', () => this.coordination.deleteNamespacedLease({ name, namespace: this.namespace }, this.options()));
  }
}

/** V1MicroTime, not Date: the API wants 6 fractional digits (RFC 3339 micro). */
function leaseSpecBody(spec: LeaseSpec): V1Lease['spec'] {
  return {
    ...(spec.holderIdentity !== undefined ? { holderIdentity: spec.holderIdentity } : {}),
    ...(spec.leaseDurationSeconds !== undefined ? { leaseDurationSeconds: spec.leaseDurationSeconds } : {}),
    ...(spec.acquireTime ? { acquireTime: new V1MicroTime(spec.acquireTime.getTime()) } : {}),
    ...(spec.renewTime ? { renewTime: new V1MicroTime(spec.renewTime.getTime()) } : {}),
    ...(spec.leaseTransitions !== undefined ? { leaseTransitions: spec.leaseTransitions } : {}),
  };
}

/** Times come back as strings from 1.4.0 (not Dates), whatever the typings say. */
function toDate(v: unknown): Date | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const d = v instanceof Date ? v : new Date(String(v));
  return Number.isNaN(d.getTime()) ? undefined : d;
}

function leaseRecord(l: V1Lease): LeaseRecord {
  const s = l.spec ?? {};
  return {
    name: l.metadata?.name ?? '',
    namespace: l.metadata?.namespace ?? '',
    resourceVersion: l.metadata?.resourceVersion ?? '',
    holderIdentity: s.holderIdentity || undefined,
    leaseDurationSeconds: s.leaseDurationSeconds,
    acquireTime: toDate(s.acquireTime),
    renewTime: toDate(s.renewTime),
    leaseTransitions: s.leaseTransitions,
  };
}

function reasonOf(e: any): string {
  try {
    const body = typeof e?.body === 'string' ? JSON.parse(e.body) : e?.body;
    return body?.reason ?? 'Conflict';
  } catch {
    return 'Conflict';
  }
}
