/**
 * The store: the one typed snapshot of the world that sources write and
 * controllers read. Sources call `apply`/`remove`/`replaceAll`; controllers
 * subscribe to `change` events and read an immutable `Snapshot`.
 *
 * The store never validates (src/model/parse.ts did) and never decides
 * anything; it only keeps the last good version of every object.
 */
import { EventEmitter } from 'node:events';
import {
  objectKey,
  type BgpPolicy,
  type EndpointSlice,
  type IPPool,
  type Kind,
  type L2Policy,
  type Lease,
  type ModelObject,
  type Node,
  type Secret,
  type Service,
} from '../model/types.js';

/** A read-only view of everything the store holds at one instant. */
export interface Snapshot {
  readonly revision: number;
  readonly services: ReadonlyMap<string, Service>;
  readonly endpointSlices: ReadonlyMap<string, EndpointSlice>;
  readonly nodes: ReadonlyMap<string, Node>;
  readonly pools: ReadonlyMap<string, IPPool>;
  readonly l2Policies: ReadonlyMap<string, L2Policy>;
  readonly bgpPolicies: ReadonlyMap<string, BgpPolicy>;
  readonly leases: ReadonlyMap<string, Lease>;
  readonly secrets: ReadonlyMap<string, Secret>;
}

/** The snapshot field that holds each kind. */
export const SNAPSHOT_FIELD = {
  Service: 'services',
  EndpointSlice: 'endpointSlices',
  Node: 'nodes',
  LoadBalancerIPPool: 'pools',
  L2AnnouncementPolicy: 'l2Policies',
  BGPPeeringPolicy: 'bgpPolicies',
  Lease: 'leases',
  Secret: 'secrets',
} as const satisfies Record<Kind, keyof Snapshot>;

/**
 * The part of a snapshot that holds kinds `K`: a controller that reacts to
 * `K` is handed this type, so reading a kind it does not react to (whose
 * changes would never call it) fails to compile.
 */
export type SnapshotOf<K extends Kind> = Pick<Snapshot, 'revision' | (typeof SNAPSHOT_FIELD)[K]>;

export interface StoreChange {
  kind: Kind;
  key: string;
  type: 'upsert' | 'delete';
}

type KindMaps = { [K in Kind]: Map<string, Extract<ModelObject, { kind: K }>> };

export class Store extends EventEmitter<{ change: [StoreChange[]]; synced: [] }> {
  private readonly maps: KindMaps = {
    Service: new Map(),
    EndpointSlice: new Map(),
    Node: new Map(),
    LoadBalancerIPPool: new Map(),
    L2AnnouncementPolicy: new Map(),
    BGPPeeringPolicy: new Map(),
    Lease: new Map(),
    Secret: new Map(),
  };
  /** Service status written by pharos itself where there is no API server (manifests mode). */
  private readonly statusOverlay = new Map<string, Service['status']>();
  private revision = 0;
  private cached?: Snapshot;
  /** Kinds changed since the last snapshot: only their maps are copied again (a lease renewal must not copy 10,000 services). */
  private readonly changedKinds = new Set<Kind>();
  private isSynced = false;

  /** Insert or replace one object. Emits a change only when something changed. */
  apply(obj: ModelObject): void {
    obj = this.withOverlay(obj);
    const key = objectKey(obj.meta);
    const map = this.maps[obj.kind] as Map<string, ModelObject>;
    const prev = map.get(key);
    if (prev && JSON.stringify(prev) === JSON.stringify(obj)) return;
    map.set(key, obj);
    this.bump([{ kind: obj.kind, key, type: 'upsert' }]);
  }

  remove(kind: Kind, key: string): void {
    const map = this.maps[kind] as Map<string, ModelObject>;
    if (!map.delete(key)) return;
    this.bump([{ kind, key, type: 'delete' }]);
  }

  /** Replace every object of one kind at once (a relist); emits one batched change. */
  replaceAll(kind: Kind, objects: ModelObject[]): void {
    const map = this.maps[kind] as Map<string, ModelObject>;
    const next = new Map<string, ModelObject>();
    for (const o of objects) next.set(objectKey(o.meta), this.withOverlay(o));
    const changes: StoreChange[] = [];
    for (const key of map.keys()) if (!next.has(key)) changes.push({ kind, key, type: 'delete' });
    for (const [key, o] of next) {
      const prev = map.get(key);
      if (!prev || JSON.stringify(prev) !== JSON.stringify(o)) changes.push({ kind, key, type: 'upsert' });
    }
    if (changes.length === 0) return;
    map.clear();
    for (const [k, v] of next) map.set(k, v);
    this.bump(changes);
  }

  /**
   * Manifests mode: pharos is the only writer of Service status, so its
   * writes are kept here and laid over whatever the source supplies (a
   * manifest has no status, and a rescan must not blank an assigned address).
   * `undefined` removes the overlay.
   */
  setServiceStatus(key: string, status: Service['status'] | undefined): void {
    if (status) this.statusOverlay.set(key, status);
    else this.statusOverlay.delete(key);
    const current = this.maps.Service.get(key);
    if (current) {
      const next: Service = { ...current, status: status ?? { ingress: [], conditions: [] } };
      if (JSON.stringify(next) !== JSON.stringify(current)) {
        this.maps.Service.set(key, next);
        this.bump([{ kind: 'Service', key, type: 'upsert' }]);
      }
    }
  }

  private withOverlay(obj: ModelObject): ModelObject {
    if (obj.kind !== 'Service') return obj;
    const status = this.statusOverlay.get(objectKey(obj.meta));
    return status ? { ...obj, status } : obj;
  }

  get<K extends Kind>(kind: K, key: string): Extract<ModelObject, { kind: K }> | undefined {
    return this.maps[kind].get(key) as Extract<ModelObject, { kind: K }> | undefined;
  }

  /** Sources call this once their first full listing is in. */
  markSynced(): void {
    if (this.isSynced) return;
    this.isSynced = true;
    this.emit('synced');
  }

  get synced(): boolean {
    return this.isSynced;
  }

  /**
   * An immutable view. A kind that did not change since the previous
   * snapshot keeps the very same map object, so readers can tell at a glance
   * that nothing of that kind changed (and a lease renewal does not copy
   * every service).
   */
  snapshot(): Snapshot {
    if (this.cached && this.cached.revision === this.revision) return this.cached;
    const prev = this.cached;
    const copy = <K extends Kind>(kind: K, old: ReadonlyMap<string, Extract<ModelObject, { kind: K }>> | undefined) =>
      old && !this.changedKinds.has(kind) ? old : new Map(this.maps[kind]);
    this.cached = {
      revision: this.revision,
      services: copy('Service', prev?.services),
      endpointSlices: copy('EndpointSlice', prev?.endpointSlices),
      nodes: copy('Node', prev?.nodes),
      pools: copy('LoadBalancerIPPool', prev?.pools),
      l2Policies: copy('L2AnnouncementPolicy', prev?.l2Policies),
      bgpPolicies: copy('BGPPeeringPolicy', prev?.bgpPolicies),
      leases: copy('Lease', prev?.leases),
      secrets: copy('Secret', prev?.secrets),
    };
    this.changedKinds.clear();
    return this.cached;
  }

  private bump(changes: StoreChange[]): void {
    this.revision++;
    for (const c of changes) this.changedKinds.add(c.kind);
    this.emit('change', changes);
  }
}
