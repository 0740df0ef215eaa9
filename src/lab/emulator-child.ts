/**
 * The Kubernetes API emulator as a child process inside a lab namespace (the
 * agents reach it over their management links), driven by its parent over
 * stdin/stdout, one JSON object per line (stdio-ops.ts):
 *   → {"id":1,"op":"put","args":["services",{...}]}   ← {"id":1,"result":{...}}
 * ops: put, putMany, get, list, delete, progress, usage, counts, reset,
 * writesSince, pause, resume, failNext, closeAllWatches, openWatches.
 *
 *   node dist/lab/emulator-child.js HOST PORT   (prints {"ready":URL} once bound)
 */
import { serveOps, type Ops } from './stdio-ops.js';
import { startApiServer, type RequestRecord } from './apiserver/server.js';

type Json = any;

const [host, port] = process.argv.slice(2);
const api = await startApiServer({ host, port: Number(port), crds: [] });
const writes: { verb: string; resource: string; name?: string; code: number; at: number }[] = [];
api.onRequest((r: RequestRecord) => {
  if (['create', 'update', 'patch', 'delete'].includes(r.verb)) writes.push({ verb: r.verb, resource: r.resource, name: r.name, code: r.code, at: performance.now() });
  if (writes.length > 200_000) writes.splice(0, 100_000);
});
const ops: Ops = {
  put: (resource: string, obj: Json) => api.objects.put(resource, obj),
  /** Many objects in one call (a bench's thousands of services): returns how many were stored. */
  putMany: (items: [string, Json][]) => { for (const [resource, obj] of items) api.objects.put(resource, obj); return items.length; },
  /** Services with an address, and service leases with a holder (a bench's progress, without shipping every object). */
  progress: (leaseNamespace: string) => ({
    services: api.objects.list('services').length,
    allocated: api.objects.list('services').filter((s: Json) => s.status?.loadBalancer?.ingress?.length).length,
    leasesHeld: api.objects.list('leases', leaseNamespace).filter((l: Json) => l.metadata.name.startsWith('pharos-l2announce-') && l.spec?.holderIdentity).length,
    events: api.objects.list('events').length,
  }),
  /** This process's resident memory and CPU seconds. */
  usage: () => ({ rssMb: Math.round(process.memoryUsage().rss / 1048576), cpuS: Math.round((process.cpuUsage().user + process.cpuUsage().system) / 1e4) / 100 }),
  get: (resource: string, ns: string | null, name: string) => api.objects.get(resource, ns ?? undefined, name) ?? null,
  list: (resource: string, ns: string | null) => api.objects.list(resource, ns ?? undefined),
  delete: (resource: string, ns: string | null, name: string) => api.objects.delete(resource, ns ?? undefined, name) ?? null,
  counts: () => api.requestCounts(),
  reset: () => { api.resetRequestCounts(); writes.length = 0; return null; },
  /** Writes within the last `ms` milliseconds, by `verb resource`, or with `byName` by `verb resource/name-prefix` (node or service lease, ...). */
  writesSince: (ms: number, byName = false) => {
    const from = performance.now() - ms;
    const out: Record<string, number> = {};
    for (const w of writes) {
      if (w.at < from) continue;
      const key = byName ? `${w.verb} ${w.resource}/${(w.name ?? '').replace(/^(pharos-node-|pharos-l2announce-|pharos-).*$/, '$1')}` : `${w.verb} ${w.resource}`;
      out[key] = (out[key] ?? 0) + 1;
    }
    return out;
  },
  pause: () => { api.pause(); return null; },
  resume: () => { api.resume(); return null; },
  failNext: (verb: Parameters<typeof api.failNext>[0], code: number, opts?: Parameters<typeof api.failNext>[2]) => { api.failNext(verb, code, opts); return null; },
  closeAllWatches: () => { api.closeAllWatches(); return null; },
  openWatches: () => api.openWatches(),
};
serveOps(api, ops);
