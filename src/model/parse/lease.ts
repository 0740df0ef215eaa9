/**
 * coordination.k8s.io/v1 Lease: holder and renew times, for the L2 and IPAM
 * elections.
 */
import { type Context, readMeta, readTime } from './common.js';
import type { Lease } from '../types.js';

export function parseLeaseObject(ctx: Context): Lease {
  const meta = readMeta(ctx, 'namespaced');
  const spec = ctx.root.get('spec');
  const lease: Lease = { kind: 'Lease', meta };
  const holder = spec.get('holderIdentity').optString();
  if (holder !== undefined) lease.holderIdentity = holder;
  const duration = spec.get('leaseDurationSeconds').optInteger(0, 2 ** 31 - 1);
  if (duration !== undefined) lease.leaseDurationSeconds = duration;
  const acquireTime = readTime(spec.get('acquireTime'), false);
  if (acquireTime !== undefined) lease.acquireTime = acquireTime;
  const renewTime = readTime(spec.get('renewTime'), false);
  if (renewTime !== undefined) lease.renewTime = renewTime;
  const transitions = spec.get('leaseTransitions').optInteger(0, 2 ** 31 - 1);
  if (transitions !== undefined) lease.leaseTransitions = transitions;
  return lease;
}
