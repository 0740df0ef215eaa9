/**
 * The resource types the emulator serves, by group, version and plural:
 * built-ins at start, custom ones as their CRDs are created and removed.
 * Routing, discovery and the OpenAPI document all read the one map.
 */
import type { Registry } from './discovery.js';
import type { ResourceType } from './resources.js';

export class ResourceRegistry {
  /** group → version → plural → type */
  readonly map: Registry = new Map();

  register(r: ResourceType): void {
    const versions = this.map.get(r.group) ?? new Map<string, Map<string, ResourceType>>();
    this.map.set(r.group, versions);
    const plurals = versions.get(r.version) ?? new Map<string, ResourceType>();
    versions.set(r.version, plurals);
    plurals.set(r.plural, r);
  }

  unregister(r: Pick<ResourceType, 'group' | 'version' | 'plural'>): void {
    const versions = this.map.get(r.group);
    versions?.get(r.version)?.delete(r.plural);
    if (versions?.get(r.version)?.size === 0) versions.delete(r.version);
    if (versions?.size === 0) this.map.delete(r.group);
  }

  lookup(group: string, version: string, plural: string): ResourceType | undefined {
    return this.map.get(group)?.get(version)?.get(plural);
  }

  servesVersion(group: string, version: string): boolean {
    return this.map.get(group)?.has(version) ?? false;
  }

  /** The first type of that plural in any group (the programmatic `objects` API names resources by plural only). */
  byPlural(plural: string): ResourceType | undefined {
    for (const versions of this.map.values()) for (const plurals of versions.values()) if (plurals.has(plural)) return plurals.get(plural);
    return undefined;
  }
}
