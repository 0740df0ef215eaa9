/**
 * One page of the conntrack map for `pharos bpf ct list` and /v1/conntrack:
 * read-only batch lookups from a cursor the caller hands back (`continue`),
 * so a page costs what it holds, never the whole table, and entries decoded
 * through abi.ts with their backend named.
 */
import { CT_CLOSING, CT_ESTABLISHED, CT_NEW, decodeConntrack, decodeFlow, flowFamily, protoName } from './abi.js';
import type { BpfMap } from '../native/libbpf.js';
import type { ProgrammedBackend } from './plan.js';
import { formatEndpoint } from '../model/cidr.js';
import { StateQueryError as QueryError, type ConntrackView } from '../metrics/state-view.js';

/** Pages: default and hard maximum (a page costs what it holds, never the whole table). */
export const CONNTRACK_PAGE = 1000;
export const CONNTRACK_MAX_PAGE = 10_000;
/** Entries a page may run over its limit to finish a hash bucket. */
const BUCKET_SLACK = 64;

const CT_STATE_NAMES: Record<number, string> = { [CT_NEW]: 'new', [CT_ESTABLISHED]: 'established', [CT_CLOSING]: 'closing' };

/** One page from `map` (the pinned conntrack map); `total` is the entry count shown beside it; throws StateQueryError on a bad query. */
export function conntrackPage(map: BpfMap, query: URLSearchParams, total: number, backends: () => Iterable<ProgrammedBackend>): ConntrackView {
  const limitText = query.get('limit');
  const limit = limitText === null ? CONNTRACK_PAGE : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > CONNTRACK_MAX_PAGE) {
    throw new QueryError(`limit: expected an integer from 1 to ${CONNTRACK_MAX_PAGE} (page on with continue)`);
  }
  const token = query.get('continue');
  const keySize = map.keySize;
  let cursor = Buffer.alloc(keySize + 8);
  if (token) {
    const raw = Buffer.from(token, 'base64url');
    if (raw.length !== cursor.length) throw new QueryError('continue: not a token this agent gave');
    cursor = raw;
  }
  // One page: batch reads from the cursor until `limit` entries (the cost follows the page, not the table).
  // The kernel hands a hash bucket out whole: room for one more bucket past `limit`, and a bucket that
  // does not fit in what is left (ENOSPC) starts the next page.
  const room = limit + BUCKET_SLACK;
  const valueSize = map.valueBufferSize;
  const keys = Buffer.alloc(keySize * room);
  const values = Buffer.alloc(valueSize * room);
  let count = 0;
  let done = false;
  let first = !token;
  while (count < limit && !done) {
    let r: { count: number; done: boolean };
    const read = (upTo: number): { count: number; done: boolean } =>
      map.lookupBatch(cursor, first, keys.subarray(count * keySize, upTo * keySize), values.subarray(count * valueSize, upTo * valueSize));
    try {
      r = read(limit);
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOSPC') throw err;
      if (count > 0) break;
      r = read(room); // a bucket bigger than the page: this page holds it whole
    }
    first = false;
    count += r.count;
    done = r.done;
    if (r.count === 0 && !done) break;
  }
  let backendsById: Map<number, ProgrammedBackend> | undefined;
  const backend = (id: number): ProgrammedBackend | undefined => {
    backendsById ??= new Map([...(backends())].map((b) => [b.id, b]));
    return backendsById.get(id);
  };
  const now = process.hrtime.bigint();
  const entries: ConntrackView['entries'] = [];
  for (let i = 0; i < count; i++) {
    const k = keys.subarray(i * keySize, (i + 1) * keySize);
    const flow = decodeFlow(k);
    const ct = decodeConntrack(values.subarray(i * valueSize, (i + 1) * valueSize), flowFamily(k));
    const be = backend(ct.backendId);
    entries.push({
      protocol: protoName(flow.proto),
      source: formatEndpoint(flow.src, flow.sport),
      destination: formatEndpoint(flow.dst, flow.dport),
      backend: be ? formatEndpoint(be.address, be.port) : `#${ct.backendId}`,
      snat: ct.snatAddress ? formatEndpoint(ct.snatAddress, ct.snatPort) : '',
      state: CT_STATE_NAMES[ct.state] ?? String(ct.state),
      idleSeconds: Number((now - ct.lastSeenNs) / 1_000_000n) / 1000,
    });
  }
  return { entries, truncated: !done, total, ...(!done ? { continue: cursor.toString('base64url') } : {}) };
}
