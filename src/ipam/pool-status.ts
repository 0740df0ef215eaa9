/**
 * What the IPAM reports about each pool: conditions and address counts, and
 * the one-row rendering `pharos pool list` prints
 * (`NAME DISABLED CONFLICTING IPS AVAILABLE AGE`, as `kubectl get` shows
 * Cilium's pools in the classic walkthroughs).
 *
 * Counts are decimal strings: an IPv6 /64 holds 2^64 addresses, beyond what
 * a JSON number carries exactly.
 *
 * Conditions (status True/False, never absent once reconciled):
 * - `lb.pharos.io/PoolConflict`: True when the pool overlaps an older pool
 *   (reason `overlap`) or itself (reason `self_overlap`); it then hands out
 *   nothing, but services keep the addresses of it they already hold (issue
 *   17: no live address moves because of pool bookkeeping). False: reason
 *   `no_conflict`.
 * - `lb.pharos.io/InvalidSpec`: True (reason `invalid_spec`) when a block or
 *   the selector could not be understood; the message names every field.
 *   Such a pool keeps the addresses already held in its valid blocks and
 *   hands out nothing new. False: reason `valid`.
 */
import type { Condition, IPFamily } from '../model/types.js';
import type { AnalysedPool } from './pools.js';

export const POOL_CONFLICT_CONDITION = 'lb.pharos.io/PoolConflict';
export const POOL_INVALID_CONDITION = 'lb.pharos.io/InvalidSpec';

export interface AddressCounts {
  total: string;
  used: string;
  available: string;
}

export interface PoolStatus {
  /** Conditions without lastTransitionTime: the controller stamps times when a status flips. */
  conditions: Condition[];
  disabled: boolean;
  conflicting: boolean;
  /** All families together (what the IPS / AVAILABLE columns show). */
  total: string;
  used: string;
  available: string;
  families: Record<IPFamily, AddressCounts>;
}

/**
 * `free` is what the pool could still hand out per family. A conflicting
 * pool offers nothing and counts as used only the addresses it keeps (`kept`:
 * held by services, covered by no non-conflicting pool); an invalid one
 * offers nothing new.
 */
export function poolStatus(pool: AnalysedPool, free: Record<IPFamily, bigint>, kept: Record<IPFamily, bigint> = { IPv4: 0n, IPv6: 0n }): PoolStatus {
  const families = {} as Record<IPFamily, AddressCounts>;
  let total = 0n;
  let used = 0n;
  let available = 0n;
  for (const family of ['IPv4', 'IPv6'] as const) {
    const familyTotal = pool.allocatable[family].reduce((n, r) => n + (r.last - r.first + 1n), 0n);
    const familyUsed = pool.state === 'conflicting' ? kept[family] : familyTotal - free[family];
    const familyAvailable = pool.state === 'conflicting' || pool.state === 'invalid' ? 0n : familyTotal - familyUsed;
    families[family] = { total: String(familyTotal), used: String(familyUsed), available: String(familyAvailable) };
    total += familyTotal;
    used += familyUsed;
    available += familyAvailable;
  }
  const conflict: Condition = pool.conflict
    ? {
        type: POOL_CONFLICT_CONDITION,
        status: 'True',
        reason: pool.conflict.withPool ? 'overlap' : 'self_overlap',
        message: pool.conflict.message,
      }
    : { type: POOL_CONFLICT_CONDITION, status: 'False', reason: 'no_conflict', message: 'no overlap with older pools or within the pool' };
  const invalid: Condition = pool.errors.length
    ? {
        type: POOL_INVALID_CONDITION,
        status: 'True',
        reason: 'invalid_spec',
        message: pool.errors.map((e) => `${e.field}: ${e.message}`).join('; '),
      }
    : { type: POOL_INVALID_CONDITION, status: 'False', reason: 'valid', message: 'spec is valid' };
  return {
    conditions: [conflict, invalid],
    disabled: pool.pool.disabled,
    conflicting: pool.state === 'conflicting',
    total: String(total),
    used: String(used),
    available: String(available),
    families,
  };
}

/**
 * The conditions Cilium's own LB-IPAM writes on a CiliumLoadBalancerIPPool,
 * which its CRD's printer columns read (`kubectl get ippools`: CONFLICTING
 * is `cilium.io/PoolConflict`'s status, IPS AVAILABLE is
 * `cilium.io/IPsAvailable`'s message): counts as messages of conditions with
 * status Unknown and reason `noreason`, as Cilium has them. Times follow the
 * pharos conflict condition's (the counts change with every allocation;
 * their transition time does not).
 */
export function ciliumPoolConditions(status: PoolStatus): Condition[] {
  const conflict = status.conditions.find((c) => c.type === POOL_CONFLICT_CONDITION);
  const at = conflict?.lastTransitionTime ? { lastTransitionTime: conflict.lastTransitionTime } : {};
  const count = (type: string, n: string): Condition => ({ type, status: 'Unknown', reason: 'noreason', message: n, ...at });
  return [
    { type: 'cilium.io/PoolConflict', status: status.conflicting ? 'True' : 'False', reason: conflict?.reason ?? 'no_conflict', message: conflict?.message ?? '', ...at },
    count('cilium.io/IPsTotal', status.total),
    count('cilium.io/IPsAvailable', status.available),
    count('cilium.io/IPsUsed', status.used),
  ];
}
