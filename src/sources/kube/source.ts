/**
 * The Kubernetes source: informers for everything pharos reads, each object
 * validated by src/model/parse.ts and written into the Store.
 *
 * Rules (DESIGN.md, "Bad input and faults"):
 * - an object that does not parse is reported (event + counter) and the
 *   last good version stays in the store;
 * - while the API server is unreachable nothing is removed: informers keep
 *   retrying and only a successful relist can delete;
 * - the store is marked synced once every informer has listed once.
 *
 * Optional kinds are found through discovery: the pharos CRDs (absent CRDs
 * are not an error, only a warning) and Cilium's, re-probed periodically so
 * installing them later is noticed.
 */
import { EventEmitter } from 'node:events';
import type { KubeConfig } from '@kubernetes/client-node';
import { parseObject, type ParseError, type ParseResult } from '../../model/parse.js';
import { objectKey, type Kind } from '../../model/types.js';
import type { Store } from '../../store/store.js';
import { KubeInformer, type InformerSpec, type InformerTuning } from './informer.js';
import { KubeHttpError, RestClient } from './rest-client.js';

export interface KubeSourceOptions {
  kc: KubeConfig;
  store: Store;
  /** The agent's namespace: Leases and Secrets are read there only (a namespaced Role suffices). Default pharos-system. */
  namespace?: string;
  /** Watch Secrets (BGP passwords). Default false. */
  secrets?: boolean;
  /** Cilium CRDs: 'auto' (default) watches them when discovery shows them. */
  cilium?: 'auto' | boolean;
  /** How often absent optional CRDs are looked for again. Default 60 s. */
  crdProbeIntervalMs?: number;
  tuning?: Partial<InformerTuning>;
  /** Injected for tests; default parseObject. */
  parse?: (raw: unknown) => ParseResult;
}

export interface ParseFailure {
  kind: Kind;
  key: string;
  error: ParseError;
  /** `LoadBalancerIPPool "blue": spec.blocks[2].cidr: ...` */
  message: string;
}

export interface KubeSourceEvents {
  parseError: [ParseFailure];
  /** An object that failed to parse is now good again, or gone (clear what parseError reported). */
  parseRecovered: [{ kind: Kind; key: string }];
  /** Accepted with caveats (unsupported Cilium options, ...). */
  warning: [string];
  /** An informer failed; it retries by itself. */
  failure: [{ kind: Kind; path: string; error: Error; retryInMs: number }];
  synced: [];
}

interface Watched {
  model: Kind;
  spec: InformerSpec;
}

interface OptionalGroup {
  groupVersion: string;
  kinds: { model: Kind; plural: string; kind: string }[];
}

/** The kinds both groups serve; Cilium's are named after pharos' with a Cilium prefix. */
const OPTIONAL_KINDS: { model: Kind; plural: string }[] = [
  { model: 'LoadBalancerIPPool', plural: 'loadbalancerippools' },
  { model: 'L2AnnouncementPolicy', plural: 'l2announcementpolicies' },
  { model: 'BGPPeeringPolicy', plural: 'bgppeeringpolicies' },
];

const pharosGroup: OptionalGroup = {
  groupVersion: 'lb.pharos.io/v1alpha1',
  kinds: OPTIONAL_KINDS.map(({ model, plural }) => ({ model, plural, kind: model })),
};

const ciliumGroup: OptionalGroup = {
  groupVersion: 'cilium.io/v2alpha1',
  kinds: OPTIONAL_KINDS.map(({ model, plural }) => ({ model, plural: `cilium${plural}`, kind: `Cilium${model}` })),
};

export class KubeSource extends EventEmitter<KubeSourceEvents> {
  readonly rest: RestClient;
  private readonly informers = new Map<string, KubeInformer>();
  private readonly notListed = new Set<string>();
  private readonly parse: (raw: unknown) => ParseResult;
  /** `Kind key` of objects whose latest version did not parse. */
  private readonly failing = new Set<string>();
  private probeTimer: NodeJS.Timeout | undefined;
  private crdInformer?: KubeInformer;
  private stopped = false;
  /** Optional groups whose discovery has not answered yet (1 until the first probe ends). */
  private groupsUndecided = 1;
  private warnedNoPharosCrds = false;
  /** Kinds the RBAC refuses (403) and the source runs without, with why: `Secret` → the message. */
  readonly refused = new Map<Kind, { object: string; message: string; at: string }>();
  /** Counters for metrics (plain numbers; the metrics module reads them on scrape). */
  readonly counters = {
    parseErrors: {} as Record<string, number>,
    applied: {} as Record<string, number>,
    deleted: {} as Record<string, number>,
    informerFailures: {} as Record<string, number>,
  };

  constructor(private readonly opts: KubeSourceOptions) {
    super();
    this.rest = new RestClient(opts.kc);
    this.parse = opts.parse ?? parseObject;
  }

  get namespace(): string {
    return this.opts.namespace ?? 'pharos-system';
  }

  /** Resolves once the core informers started and the optional groups were probed once (not when synced). */
  async start(): Promise<void> {
    this.stopped = false;
    const ns = encodeURIComponent(this.namespace);
    const core: Watched[] = [
      { model: 'Service', spec: { path: '/api/v1/services', apiVersion: 'v1', kind: 'Service' } },
      { model: 'EndpointSlice', spec: { path: '/apis/discovery.k8s.io/v1/endpointslices', apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice' } },
      { model: 'Node', spec: { path: '/api/v1/nodes', apiVersion: 'v1', kind: 'Node' } },
      { model: 'Lease', spec: { path: `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`, apiVersion: 'coordination.k8s.io/v1', kind: 'Lease' } },
    ];
    if (this.opts.secrets) core.push({ model: 'Secret', spec: { path: `/api/v1/namespaces/${ns}/secrets`, apiVersion: 'v1', kind: 'Secret' } });
    // Register every initial informer before starting any, so `synced` waits for all of them.
    for (const w of core) this.notListed.add(w.spec.path);
    for (const w of core) this.watch(w);
    await this.probe();
    this.watchCrds();
  }

  /**
   * CRDs installed after the start are found at once, not at the next
   * probe: a CustomResourceDefinition of an optional group appearing (or
   * becoming Established) probes again. Not part of `synced`; without the
   * right to list CRDs the periodic probe still finds them.
   */
  private watchCrds(): void {
    const groups = new Set(this.groups().map((g) => g.groupVersion.split('/')[0]!));
    const inf = new KubeInformer(this.rest, { path: '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition' }, this.opts.tuning);
    this.crdInformer = inf;
    const seen = (raw: any): void => {
      if (!groups.has(String(raw?.spec?.group ?? ''))) return;
      if (!this.waitingFor().length) return;
      clearTimeout(this.probeTimer);
      // Discovery serves a new CRD a moment after the object; its update to Established brings another look.
      this.probeTimer = setTimeout(() => void this.probe(), 200);
    };
    inf.on('add', seen);
    inf.on('update', seen);
    inf.on('failure', (error) => {
      if (error instanceof KubeHttpError && (error.statusCode === 403 || error.statusCode === 404)) {
        this.emit('warning', `CustomResourceDefinitions cannot be watched (${error.statusCode}): CRDs installed later are found within ${(this.opts.crdProbeIntervalMs ?? 60_000) / 1000} s`);
        void inf.stop();
      }
    });
    inf.start();
  }

  /** What the source watches now, and the optional kinds it waits for (their CRDs not installed). */
  kinds(): { watching: string[]; waiting: string[] } {
    const watching = [...this.informers.values()].map((i) => i.spec.kind);
    return { watching, waiting: this.waitingFor() };
  }

  private waitingFor(): string[] {
    return this.groups().flatMap((g) => this.missingKinds(g).map((k) => k.kind));
  }

  /** The kinds of `g` not watched yet. */
  private missingKinds(g: OptionalGroup): OptionalGroup['kinds'] {
    return g.kinds.filter((k) => !this.informers.has(`/apis/${g.groupVersion}/${k.plural}`));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.probeTimer);
    await this.crdInformer?.stop();
    await Promise.all([...this.informers.values()].map((i) => i.stop()));
    this.informers.clear();
  }

  /** The informers by path, for tests and metrics. */
  informerStats(): Record<string, KubeInformer['stats']> {
    return Object.fromEntries([...this.informers].map(([p, i]) => [p, { ...i.stats }]));
  }

  private groups(): OptionalGroup[] {
    return this.opts.cilium === false ? [pharosGroup] : [pharosGroup, ciliumGroup];
  }

  /**
   * Look for the optional groups and watch what they serve. A group whose
   * discovery failed (API unreachable) is undecided: the store is not marked
   * synced until every group has a definite answer, or the agent could act
   * on a world without its pools. Undecided groups are retried within a
   * second; decided ones every crdProbeIntervalMs (CRDs installed later).
   */
  private async probe(): Promise<void> {
    const undecided = new Set<OptionalGroup>();
    for (const g of this.groups()) {
      const missing = this.missingKinds(g);
      if (missing.length === 0) continue;
      let served: Set<string>;
      if (g === ciliumGroup && this.opts.cilium === true) {
        served = new Set(missing.map((k) => k.plural));
      } else {
        try {
          const doc = await this.rest.getJson(`/apis/${g.groupVersion}`, {}, 10_000);
          served = new Set((doc?.resources ?? []).map((r: any) => String(r.name)));
        } catch (e) {
          if (!(e instanceof KubeHttpError && e.statusCode === 404)) {
            undecided.add(g);
            continue;
          }
          if (g === pharosGroup && !this.warnedNoPharosCrds) {
            this.warnedNoPharosCrds = true;
            this.emit('warning', `the pharos CRDs (${g.groupVersion}) are not installed; pools and policies will be read once they are`);
          }
          served = new Set();
        }
      }
      if (this.stopped) return;
      for (const k of missing) {
        if (!served.has(k.plural)) continue;
        const w: Watched = { model: k.model, spec: { path: `/apis/${g.groupVersion}/${k.plural}`, apiVersion: g.groupVersion, kind: k.kind } };
        if (!this.opts.store.synced) this.notListed.add(w.spec.path);
        this.watch(w);
      }
    }
    this.groupsUndecided = undecided.size;
    this.maybeSynced();
    if (this.stopped) return;
    const interval = this.opts.crdProbeIntervalMs ?? 60_000;
    this.probeTimer = setTimeout(() => void this.probe(), undecided.size > 0 ? Math.min(1000, interval) : interval);
    this.probeTimer.unref();
  }

  private maybeSynced(): void {
    if (this.notListed.size > 0 || this.groupsUndecided > 0 || this.opts.store.synced) return;
    this.opts.store.markSynced();
    this.emit('synced');
  }

  private watch(w: Watched): void {
    const { store } = this.opts;
    const inf = new KubeInformer(this.rest, w.spec, this.opts.tuning);
    this.informers.set(w.spec.path, inf);
    const upsert = (raw: any) => {
      const r = this.parse(raw);
      const key = objectKey({ name: String(raw?.metadata?.name ?? ''), namespace: raw?.metadata?.namespace });
      if (r.ok) {
        if (this.failing.delete(`${w.model} ${key}`)) this.emit('parseRecovered', { kind: w.model, key });
        for (const msg of r.warnings) this.emit('warning', msg);
        store.apply(r.object);
        this.counters.applied[w.model] = (this.counters.applied[w.model] ?? 0) + 1;
      } else if (!r.ignored) {
        // Keep the last good version: the store is not touched.
        this.counters.parseErrors[w.model] = (this.counters.parseErrors[w.model] ?? 0) + 1;
        this.failing.add(`${w.model} ${key}`);
        this.emit('parseError', { kind: w.model, key, error: r.error, message: r.error.toString() });
      }
    };
    inf.on('add', upsert);
    inf.on('update', upsert);
    inf.on('delete', (raw) => {
      const key = objectKey({ name: String(raw?.metadata?.name ?? ''), namespace: raw?.metadata?.namespace });
      store.remove(w.model, key);
      if (this.failing.delete(`${w.model} ${key}`)) this.emit('parseRecovered', { kind: w.model, key });
      this.counters.deleted[w.model] = (this.counters.deleted[w.model] ?? 0) + 1;
    });
    inf.on('listed', () => {
      if (this.notListed.delete(w.spec.path)) this.maybeSynced();
    });
    inf.on('failure', (error, retryInMs) => {
      this.counters.informerFailures[w.model] = (this.counters.informerFailures[w.model] ?? 0) + 1;
      // Secrets only serve BGP passwords: without the right to read them the agent runs on, says
      // so, and does not wait for them (a RBAC without Secrets would otherwise never be synced).
      if (w.model === 'Secret' && error instanceof KubeHttpError && error.statusCode === 403) {
        const message = `Secrets in ${this.namespace} cannot be read (403): BGP neighbours with authSecretRef stay unconfigured until the RBAC allows list and watch of Secrets there and the agent restarts`;
        this.refused.set('Secret', { object: `Secret ${this.namespace}/*`, message, at: new Date().toISOString() });
        this.emit('warning', message);
        void inf.stop();
        this.informers.delete(w.spec.path);
        if (this.notListed.delete(w.spec.path)) this.maybeSynced();
        return;
      }
      this.emit('failure', { kind: w.model, path: w.spec.path, error, retryInMs });
    });
    inf.start();
  }
}
