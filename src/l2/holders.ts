/**
 * Announced addresses that nobody answers for, as every agent of a cluster
 * can judge them (pharos_l2_addresses_without_holder): leases are cluster
 * objects every agent watches, so each one counts the same addresses, and
 * the alert takes max() over agents rather than adding N copies.
 *
 * An address counts when some L2 policy announces it (a service of ours
 * has it) and its lease names no live holder:
 * - `holder-down`: the lease names a node whose node lease is not renewed
 *   (dead, cut off from the API, wedged);
 * - `no-holder`: no lease, or one released (empty holder), while a live
 *   node that is not draining could take it;
 * - `no-eligible-node`: no lease holder and no live, undrained node the
 *   policies select can carry it (node selector, a Local service without a
 *   ready endpoint, every eligible node draining or down).
 */

export const WITHOUT_HOLDER_REASONS = ['holder-down', 'no-holder', 'no-eligible-node'] as const;
export type WithoutHolderReason = typeof WITHOUT_HOLDER_REASONS[number];

export interface HolderInput {
  /** Every announced address (duplicates allowed: an address several services share counts once). */
  addresses: Iterable<string>;
  /** The holder its lease names, '' or undefined when there is no lease or the lease was released. */
  holderOf(address: string): string | undefined;
  /** Whether a node's lease is renewed, as the election judges it. */
  isLive(node: string): boolean;
  /** Nodes some policy selects for a service of the address. */
  eligibleOf(address: string): readonly string[] | undefined;
  draining: ReadonlySet<string>;
}

export function countAddressesWithoutHolder(input: HolderInput): Record<WithoutHolderReason, number> {
  const counts: Record<WithoutHolderReason, number> = { 'holder-down': 0, 'no-holder': 0, 'no-eligible-node': 0 };
  for (const address of new Set(input.addresses)) {
    const holder = input.holderOf(address);
    if (holder) {
      if (!input.isLive(holder)) counts['holder-down']++;
      continue;
    }
    const takeable = (input.eligibleOf(address) ?? []).some((n) => input.isLive(n) && !input.draining.has(n));
    counts[takeable ? 'no-holder' : 'no-eligible-node']++;
  }
  return counts;
}
