/**
 * Just enough OpenAPI v3 for `kubectl apply -f` and `kubectl create -f`
 * without `--validate=false`, as the walkthroughs write them. kubectl 1.32
 * validates on the server when the server says it can: it looks for the
 * `fieldValidation` query parameter on the PATCH operation of the object's
 * kind in `/openapi/v3/<group-version>`, and with it sends
 * `fieldValidation=Strict` and skips its own schema check (which would need
 * the full OpenAPI v2 document). So each served group-version gets a
 * document of PATCH operations, one per kind, carrying the parameter and
 * the kind's `x-kubernetes-group-version-kind` — and no schemas: `kubectl
 * apply` then builds its patches as it did without OpenAPI (the compiled-in
 * types for built-in kinds, JSON merge patches for custom resources).
 * The emulator itself checks custom resources against their CRD schema.
 */
import { createHash } from 'node:crypto';
import type { Registry } from './discovery.js';
import type { ResourceType } from './resources.js';

type Json = any;

/** `api/v1`, `apis/G/V`: the keys of /openapi/v3's `paths`. */
function gvKey(group: string, version: string): string {
  return group ? `apis/${group}/${version}` : `api/${version}`;
}

function gvDocument(types: ResourceType[]): Json {
  const paths: Record<string, Json> = {};
  for (const r of types) {
    const base = r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`;
    const path = r.namespaced ? `${base}/namespaces/{namespace}/${r.plural}/{name}` : `${base}/${r.plural}/{name}`;
    paths[path] = {
      patch: {
        operationId: `patch${r.kind}`,
        parameters: [{ name: 'fieldValidation', in: 'query', description: 'how the server treats unknown and duplicate fields', schema: { type: 'string', uniqueItems: true } }],
        responses: { 200: { description: 'OK' } },
        'x-kubernetes-action': 'patch',
        'x-kubernetes-group-version-kind': { group: r.group, version: r.version, kind: r.kind },
      },
    };
  }
  return { openapi: '3.0.0', info: { title: 'Kubernetes (pharos emulator)', version: 'v1.32.0' }, paths, components: { schemas: {} } };
}

/**
 * The document for `path` (`/openapi/v3` or `/openapi/v3/<gv>`), or
 * undefined when there is none. The root's hashes change with the
 * registry, so kubectl's cache follows CRDs applied later.
 */
export function openApiV3Document(path: string, registry: Registry): Json | undefined {
  const docs = new Map<string, Json>();
  for (const [group, versions] of registry) {
    for (const [version, plurals] of versions) docs.set(gvKey(group, version), gvDocument([...plurals.values()]));
  }
  if (path === '/openapi/v3') {
    const paths: Record<string, Json> = {};
    for (const [key, doc] of docs) {
      const hash = createHash('sha256').update(JSON.stringify(doc)).digest('hex').slice(0, 32).toUpperCase();
      paths[key] = { serverRelativeURL: `/openapi/v3/${key}?hash=${hash}` };
    }
    return { paths };
  }
  return path.startsWith('/openapi/v3/') ? docs.get(path.slice('/openapi/v3/'.length)) : undefined;
}
