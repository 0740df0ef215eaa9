/**
 * The write paths shared by HTTP and the programmatic `objects` API:
 * create, update (the object or its status) and delete, with schema,
 * admission, optimistic concurrency and generation bumps as upstream does
 * them. Creating or deleting a CRD registers or removes its types.
 */
import { AdmissionError, admitService, canonicalJson, checkName, specPart } from './admission.js';
import { resourceId, type Database, type Json } from './database.js';
import type { ResourceRegistry } from './registry.js';
import { apiVersionOf, crdResource, resourcesFromCrd, type ResourceType } from './resources.js';
import { pruneAndDefault, validateSchema } from './schema.js';
import { HttpError } from './status.js';

export function notFound(r: ResourceType, name: string): HttpError {
  return new HttpError(404, 'NotFound', `${r.plural}${r.group ? '.' + r.group : ''} "${name}" not found`, { name, group: r.group, kind: r.plural });
}

export function conflict(r: ResourceType, name: string): HttpError {
  return new HttpError(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${r.plural}${r.group ? '.' + r.group : ''} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
    { name, group: r.group, kind: r.plural },
  );
}

function prepareCreate(r: ResourceType, obj: Json, namespace: string | undefined): Json {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new HttpError(400, 'BadRequest', 'the body must be a JSON object');
  const o = structuredClone(obj);
  o.apiVersion = apiVersionOf(r);
  o.kind = r.kind;
  const meta = (o.metadata ??= {});
  if (!meta.name && meta.generateName) meta.name = `${meta.generateName}${Math.random().toString(36).slice(2, 7)}`;
  if (r.namespaced) {
    if (meta.namespace && namespace && meta.namespace !== namespace) {
      throw new HttpError(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
    }
    meta.namespace = namespace ?? meta.namespace ?? 'default';
  } else delete meta.namespace;
  delete meta.resourceVersion;
  delete meta.uid;
  delete meta.creationTimestamp;
  delete meta.deletionTimestamp;
  meta.generation = 1;
  if (r.statusSubresource && r.dropStatusOnCreate) delete o.status;
  return o;
}

/** Prune, default and validate a custom resource against its CRD schema (422 with every cause). */
function applySchema(r: ResourceType, o: Json): void {
  if (!r.schema) return;
  pruneAndDefault(o, r.schema, true);
  const issues = validateSchema(o, r.schema, '', true);
  if (issues.length === 0) return;
  const name = o.metadata?.name ?? '';
  throw new HttpError(
    422,
    'Invalid',
    `${r.kind}.${r.group} "${name}" is invalid: ${issues.map((i) => `${i.field}: ${i.message}`).join(', ')}`,
    { name, group: r.group, kind: r.kind, causes: issues.map((i) => ({ reason: 'FieldValueInvalid', message: i.message, field: i.field })) },
  );
}

export class Writes {
  /**
   * @param builtins the types served without a CRD: a custom definition of one of them
   *   replaces it while it exists, and the built-in comes back when the CRD is deleted.
   */
  constructor(
    private readonly db: Database,
    private readonly registry: ResourceRegistry,
    private readonly builtins: readonly ResourceType[],
  ) {}

  private admit(r: ResourceType, o: Json, old: Json | undefined): void {
    applySchema(r, o);
    try {
      checkName(o.metadata.name);
      if (r.group === '' && r.plural === 'services') admitService(o, old, this.db);
      if (r.group === '' && r.plural === 'namespaces') o.status = { phase: 'Active' };
      if (r.group === '' && r.plural === 'secrets') o.type ??= 'Opaque';
      if (r === crdResource) {
        for (const t of resourcesFromCrd(o)) this.registry.register(t);
        o.status = {
          conditions: [
            { type: 'NamesAccepted', status: 'True', reason: 'NoConflicts', message: 'no conflicts found' },
            { type: 'Established', status: 'True', reason: 'InitialNamesAccepted', message: 'the initial names have been accepted' },
          ],
          acceptedNames: o.spec.names,
          storedVersions: (o.spec.versions ?? []).filter((v: Json) => v.storage).map((v: Json) => v.name),
        };
      }
    } catch (e) {
      if (e instanceof AdmissionError || r === crdResource) {
        const field = e instanceof AdmissionError ? e.field : 'spec';
        throw new HttpError(422, 'Invalid', `${r.kind} "${o.metadata?.name ?? ''}" is invalid: ${field}: ${(e as Error).message}`, {
          name: o.metadata?.name,
          group: r.group,
          kind: r.kind,
          causes: [{ reason: 'FieldValueInvalid', message: (e as Error).message, field }],
        });
      }
      throw e;
    }
  }

  create(r: ResourceType, body: Json, namespace: string | undefined, dryRun: boolean): Json {
    const o = prepareCreate(r, body, namespace);
    this.admit(r, o, undefined);
    if (this.db.get(resourceId(r), o.metadata.namespace, o.metadata.name)) {
      throw new HttpError(409, 'AlreadyExists', `${r.plural}${r.group ? '.' + r.group : ''} "${o.metadata.name}" already exists`, {
        name: o.metadata.name,
        group: r.group,
        kind: r.plural,
      });
    }
    return dryRun ? o : this.db.put(resourceId(r), o);
  }

  /** PUT semantics for the main resource or `/status`; `incoming` is the full desired object. */
  update(r: ResourceType, namespace: string | undefined, name: string, incoming: Json, status: boolean, dryRun: boolean): Json {
    if (typeof incoming !== 'object' || incoming === null || Array.isArray(incoming)) throw new HttpError(400, 'BadRequest', 'the body must be a JSON object');
    const current = this.db.get(resourceId(r), namespace, name);
    if (!current) throw notFound(r, name);
    const meta = incoming.metadata ?? {};
    if (meta.name !== undefined && meta.name !== name) {
      throw new HttpError(400, 'BadRequest', `the name of the object (${meta.name}) does not match the name on the URL (${name})`);
    }
    if (meta.resourceVersion !== undefined && meta.resourceVersion !== '' && String(meta.resourceVersion) !== current.metadata.resourceVersion) {
      throw conflict(r, name);
    }
    let next: Json;
    if (status) {
      next = structuredClone(current);
      if (incoming.status === undefined) delete next.status;
      else next.status = structuredClone(incoming.status);
      applySchema(r, next);
    } else {
      next = structuredClone(incoming);
      next.apiVersion = apiVersionOf(r);
      next.kind = r.kind;
      next.metadata = {
        ...structuredClone(meta),
        name,
        uid: current.metadata.uid,
        creationTimestamp: current.metadata.creationTimestamp,
        generation: current.metadata.generation ?? 1,
      };
      if (r.namespaced) next.metadata.namespace = current.metadata.namespace;
      else delete next.metadata.namespace;
      if (r.statusSubresource) {
        if (current.status === undefined) delete next.status;
        else next.status = structuredClone(current.status);
      }
      this.admit(r, next, current);
      if (specPart(next) !== specPart(current)) next.metadata.generation = (current.metadata.generation ?? 1) + 1;
    }
    if (canonicalJson({ ...next, metadata: { ...next.metadata, resourceVersion: current.metadata.resourceVersion } }) === canonicalJson(current)) {
      // A no-op write keeps the resourceVersion, as upstream does (no event either).
      return current;
    }
    return dryRun ? next : this.db.put(resourceId(r), next);
  }

  remove(r: ResourceType, namespace: string | undefined, name: string, preconditions: Json, dryRun: boolean): Json {
    const db = this.db;
    const current = db.get(resourceId(r), namespace, name);
    if (!current) throw notFound(r, name);
    if (preconditions?.resourceVersion && preconditions.resourceVersion !== current.metadata.resourceVersion) throw conflict(r, name);
    if (preconditions?.uid && preconditions.uid !== current.metadata.uid) throw conflict(r, name);
    if (dryRun) return current;
    if (r.group === '' && r.plural === 'namespaces') {
      for (const { resource, object } of db.allInNamespace(name)) db.delete(resource, object.metadata.namespace, object.metadata.name);
    }
    if (r === crdResource) {
      for (const t of resourcesFromCrd(current)) {
        for (const o of db.list(resourceId(t))) db.delete(resourceId(t), o.metadata.namespace, o.metadata.name);
        this.registry.unregister(t);
        // A built-in definition of the same resource comes back (the emulator's defaults stay usable).
        const fallback = this.builtins.find((b) => b.group === t.group && b.plural === t.plural);
        if (fallback) this.registry.register(fallback);
      }
    }
    return db.delete(resourceId(r), namespace, name);
  }
}
