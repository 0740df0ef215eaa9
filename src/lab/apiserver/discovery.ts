/**
 * Legacy discovery documents (/version, /api, /apis, /apis/G, /api/v1,
 * /apis/G/V). kubectl 1.32 asks for aggregated discovery first and falls
 * back to these when the answer is plain application/json.
 */
import { discoveryEntries, type ResourceType } from './resources.js';

type Json = any;

/** group ('' for core) → version → plural → type. */
export type Registry = Map<string, Map<string, Map<string, ResourceType>>>;

export function discoveryDocument(path: string, registry: Registry, serverAddress: string): Json | undefined {
  if (path === '/version') {
    return {
      major: '1',
      minor: '32',
      gitVersion: 'v1.32.0-pharos-emulator',
      gitCommit: '0000000000000000000000000000000000000000',
      gitTreeState: 'clean',
      buildDate: '2026-01-01T00:00:00Z',
      goVersion: 'go1.23.0',
      compiler: 'gc',
      platform: 'linux/amd64',
    };
  }
  if (path === '/api') {
    return {
      kind: 'APIVersions',
      versions: ['v1'],
      serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
    };
  }
  const groupEntry = (group: string) => {
    const versions = [...(registry.get(group)?.keys() ?? [])].map((v) => ({ groupVersion: `${group}/${v}`, version: v }));
    return { name: group, versions, preferredVersion: versions[0] };
  };
  if (path === '/apis') {
    const groups = [...registry.keys()].filter((g) => g !== '').sort();
    return { kind: 'APIGroupList', apiVersion: 'v1', groups: groups.map(groupEntry) };
  }
  const segs = path.split('/').filter((s) => s);
  if (segs[0] === 'apis' && segs.length === 2 && registry.has(segs[1]!)) {
    return { kind: 'APIGroup', apiVersion: 'v1', ...groupEntry(segs[1]!) };
  }
  const gv = segs[0] === 'api' && segs.length === 2 ? ['', segs[1]!] : segs[0] === 'apis' && segs.length === 3 ? [segs[1]!, segs[2]!] : undefined;
  const plurals = gv && registry.get(gv[0]!)?.get(gv[1]!);
  if (gv && plurals) {
    return {
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: gv[0] ? `${gv[0]}/${gv[1]}` : gv[1],
      resources: [...plurals.values()].flatMap(discoveryEntries),
    };
  }
  return undefined;
}
