/**
 * LoadBalancerIPPool (pharos) and CiliumLoadBalancerIPPool: blocks as CIDRs
 * or start/stop ranges, service selector, disabled, allowFirstLastIPs.
 */
import { type Context, type Flavor, readMeta, readSelector } from './common.js';
import { FieldReader, show } from '../field-reader.js';
import { tryParseAddress } from '../cidr.js';
import { addressFamily, checkCidr } from '../syntax.js';
import type { IPPool, PoolBlock } from '../types.js';

export function parsePoolObject(ctx: Context): IPPool {
  const meta = readMeta(ctx, 'cluster');
  const spec = ctx.root.get('spec');
  spec.object();
  if (ctx.flavor === 'pharos') spec.onlyKeys(['blocks', 'serviceSelector', 'disabled', 'allowFirstLastIPs']);
  const blocksReader = spec.get('blocks');
  const blocks = blocksReader.items((r) => readBlock(r, ctx.flavor));
  // Cilium before 1.15 wrote spec.cidrs[] {cidr}; v2alpha1 still accepts it next to blocks.
  const cidrsReader = spec.get('cidrs');
  if (ctx.flavor === 'cilium') blocks.push(...cidrsReader.items((r) => readBlock(r, ctx.flavor)));
  // None written at all (a written but bad block has been reported already).
  const written = (r: FieldReader): number => (r.absent ? 0 : Array.isArray(r.value) ? r.value.length : 1);
  if (written(blocksReader) + (ctx.flavor === 'cilium' ? written(cidrsReader) : 0) === 0) {
    blocksReader.report(ctx.flavor === 'cilium' ? 'at least one block (or cidr) is required' : 'at least one block is required');
  }
  const pool: IPPool = {
    kind: 'LoadBalancerIPPool',
    meta,
    flavor: ctx.flavor,
    blocks,
    disabled: spec.recover(() => spec.get('disabled').boolean(false), false),
    allowFirstLastIPs: spec.recover(() => spec.get('allowFirstLastIPs').oneOf(['Yes', 'No'] as const, 'Yes'), 'Yes') === 'Yes',
  };
  const serviceSelector = spec.recover(() => readSelector(spec.get('serviceSelector')), undefined);
  if (serviceSelector) pool.serviceSelector = serviceSelector;
  return pool;
}

function readBlock(r: FieldReader, flavor: Flavor): PoolBlock {
  r.object();
  if (flavor === 'pharos') r.onlyKeys(['cidr', 'start', 'stop']);
  const cidrReader = r.get('cidr');
  const startReader: FieldReader = r.get('start');
  const stopReader: FieldReader = r.get('stop');
  const cidr = cidrReader.optString();
  const start = startReader.optString();
  const stop = stopReader.optString();
  if (cidr !== undefined) {
    if (start !== undefined || stop !== undefined) r.fail('give either cidr or start/stop, not both');
    const problem = checkCidr(cidr);
    if (problem) cidrReader.fail(problem);
    return { cidr };
  }
  if (start === undefined) {
    if (stop !== undefined) startReader.fail('required when stop is given');
    r.fail('needs cidr or start (with an optional stop)');
  }
  const startFamily = addressFamily(start);
  if (!startFamily) startReader.fail(`${show(start)} is not an IP address`);
  if (stop === undefined) return { start, stop: start };
  const stopFamily = addressFamily(stop);
  if (!stopFamily) stopReader.fail(`${show(stop)} is not an IP address`);
  if (stopFamily !== startFamily) stopReader.fail(`${show(stop)} is ${stopFamily} but start ${show(start)} is ${startFamily}`);
  if (addressValue(stop) < addressValue(start)) {
    stopReader.fail(`${show(stop)} comes before start ${show(start)}`);
  }
  return { start, stop };
}

function addressValue(text: string): bigint {
  return tryParseAddress(text)?.value ?? 0n;
}
