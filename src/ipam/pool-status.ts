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

/**
 * kubectl-style age: `45s`, `3m20s`, `12m`, `5h30m`, `20h`, `3d4h`, `45d`, `2y10d`, `9y`.
 * Thresholds follow the rules kubectl documents for its AGE column.
 */
export function formatAge(createdAt: string | undefined, now: Date): string {
  if (!createdAt) return '<unknown>';
  const created = Date.parse(createdAt);
  if (Number.isNaN(created)) return '<unknown>';
  const seconds = Math.max(0, Math.floor((now.getTime() - created) / 1000));
  const minutes = Math.floor(seconds / 60);
  const hours = Math.floor(minutes / 60);
  const days = Math.floor(hours / 24);
  const years = Math.floor(days / 365);
  if (seconds < 120) return `${seconds}s`;
  if (minutes < 10) return seconds % 60 ? `${minutes}m${seconds % 60}s` : `${minutes}m`;
  if (minutes < 180) return `${minutes}m`;
  if (hours < 8) return minutes % 60 ? `${hours}h${minutes % 60}m` : `${hours}h`;
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) return hours % 24 ? `${days}d${hours % 24}h` : `${days}d`;
  if (days < 365 * 2) return `${days}d`;
  if (years < 8) return days % 365 ? `${years}y${days % 365}d` : `${years}y`;
  return `${years}y`;
}

/** The columns of `pharos pool list`, as `kubectl get ciliumloadbalancerippools` prints them in the walkthroughs. */
export const POOL_LIST_COLUMNS = ['NAME', 'DISABLED', 'CONFLICTING', 'IPS AVAILABLE', 'AGE'] as const;

/** One row of `pharos pool list`, in POOL_LIST_COLUMNS order. */
export function poolListRow(name: string, status: PoolStatus, createdAt: string | undefined, now: Date): string[] {
  return [name, String(status.disabled), status.conflicting ? 'True' : 'False', status.available, formatAge(createdAt, now)];
}
