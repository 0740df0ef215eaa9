/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Conntrack: which backend a client flow goes to, with the SNAT address and
 * port (the next hop is cached per backend, fib.h). Entries live in LRU maps and are judged expired on lookup
 * (idle longer than the timeout of their state), so no sweeper is needed.
 * TCP state follows the client's flags (SYN -> NEW, ACK -> ESTABLISHED,
 * FIN/RST from either side -> CLOSING).
 */
#ifndef PHAROS_CONNTRACK_H
#define PHAROS_CONNTRACK_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include "lib/config.h"
#include "lib/maps.h"
#include "lib/parsing.h"

/* last_seen is rewritten at most this often: fewer writes to a shared line, timeouts are seconds anyway. */
#define PH_CT_TOUCH_NS (100ULL * 1000000ULL)

static __always_inline __u64 ct_timeout(__u8 proto, __u8 state)
{
	if (proto != IPPROTO_TCP)
		return cfg_udp_ns;
	return state == PH_CT_ESTABLISHED ? cfg_tcp_est_ns : cfg_tcp_transient_ns;
}

static __always_inline int ct_expired(const struct ph_ct *ct, __u8 proto, __u64 now)
{
	return now - ct->last_seen > ct_timeout(proto, ct->state);
}

/* A bare SYN on a closing flow is a new connection reusing the 5-tuple. */
static __always_inline int ct_is_reopen(const struct ph_ct *ct, const struct packet *p)
{
	return p->flow.proto == IPPROTO_TCP && ct->state == PH_CT_CLOSING &&
	       (p->tcp_flags & (PH_TCP_SYN | PH_TCP_ACK)) == PH_TCP_SYN;
}

static __always_inline __u8 ct_initial_state(const struct packet *p)
{
	if (p->flow.proto != IPPROTO_TCP)
		return PH_CT_ESTABLISHED;
	if (p->tcp_flags & (PH_TCP_FIN | PH_TCP_RST))
		return PH_CT_CLOSING;
	/* A mid-flow packet without an entry (LB failover, entry evicted) continues the flow. */
	return (p->tcp_flags & PH_TCP_SYN) ? PH_CT_NEW : PH_CT_ESTABLISHED;
}

/* Update state and idle stamp for a packet of a known flow. */
static __always_inline void ct_touch(struct ph_ct *ct, const struct packet *p, __u64 now)
{
	if (p->flow.proto == IPPROTO_TCP) {
		if (p->tcp_flags & (PH_TCP_FIN | PH_TCP_RST)) {
			if (ct->state != PH_CT_CLOSING)
				ct->state = PH_CT_CLOSING;
		} else if (ct->state == PH_CT_NEW && (p->tcp_flags & PH_TCP_ACK)) {
			ct->state = PH_CT_ESTABLISHED;
		}
	}
	if (now - ct->last_seen > PH_CT_TOUCH_NS)
		ct->last_seen = now;
}

#endif
