/**
 * Node-local access metrics: the socket hooks' per-CPU counters
 * (ph_sock_stats), read when Prometheus scrapes.
 */
import { registerBpfReasonCounter } from './bpf-counters.js';
import type { SockStatReason } from '../datapath/abi.js';

/**
 * `pharos_socket_lb_total{event}`: connect / sendmsg translated, no_backend
 * (refused), rev (recvmsg/getpeername answered with the service address),
 * rev_fail, affinity_hit. Absent while the hooks are not attached.
 */
export function registerSocketLbMetrics(counters: () => Record<SockStatReason, bigint> | undefined): void {
  registerBpfReasonCounter('pharos_socket_lb_total', 'Node-local access through the cgroup socket hooks, by event (connect, sendmsg, no_backend, rev, rev_fail, affinity_hit)', 'event', counters);
}
