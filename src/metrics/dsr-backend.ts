/**
 * DSR backend metrics (`pharos agent --role backend`): the decapsulation
 * program's per-CPU counters (ph_dc_stats), read when Prometheus scrapes.
 */
import { registerBpfReasonCounter } from './bpf-counters.js';
import type { DecapStatReason } from '../datapath/decap.js';

/**
 * `pharos_dsr_decap_total{reason}`: decap (delivered), handoff (sent on to
 * the flow's previous owner, lib/handoff.h), not_node / not_vip /
 * fragment (passed on untouched), malformed / inner_proto / nested / fail
 * (dropped). Absent unless the agent runs in the backend role.
 */
export function registerDecapMetrics(counters: () => Record<DecapStatReason, bigint> | undefined): void {
  registerBpfReasonCounter('pharos_dsr_decap_total',
    'DSR backend role: IPIP/IP6IP6 packets decapsulated (decap), handed to the flow\'s previous owner (handoff), passed on untouched (not_node, not_vip, fragment) or dropped (malformed, inner_proto, nested, fail)',
    'reason', counters);
}
