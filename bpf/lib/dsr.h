/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Direct server return, L2 dispatch (IPVS-DR style): the frame goes to the
 * Maglev-picked backend with only its MACs rewritten; the backend holds
 * the VIP on its loopback and answers the client directly. No per-flow
 * state is read or written: every LB node with the same Maglev table picks
 * the same backend for a flow, so a flow survives the loss of its LB node.
 * Design and what is left: bpf/README.md, "Direct server return".
 */
#ifndef PHAROS_DSR_H
#define PHAROS_DSR_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "lib/ctx.h"
#include "lib/config.h"
#include "lib/maps.h"
#include "lib/parsing.h"
#include "lib/maglev.h"
#include "lib/fib.h"
#include "lib/stats.h"

enum dsr_hop {
	DSR_HOP_OK,		/* nh filled: the backend's own MAC */
	DSR_HOP_NO_NEIGH,	/* on-link, MAC not resolved yet */
	DSR_HOP_OFFLINK,	/* reached through a router: L2 dispatch cannot get there */
	DSR_HOP_UNREACHABLE,	/* no route, or one of this node's addresses */
};

/**
 * dsr_resolve() - the backend's MAC and egress interface, only when the
 * backend is on-link: bpf_fib_lookup replaces the destination by the
 * gateway when the route has one, so a changed destination means the
 * frame would go to a router, which would send it (addressed to the VIP)
 * straight back to us.
 */
static __always_inline enum dsr_hop dsr_resolve(struct ph_ctx *ctx, const struct ph_flow *f,
						const struct ph_backend *be, struct ph_nexthop *nh)
{
	struct bpf_fib_lookup q = {};
	long rc;

	q.ifindex = ctx->ingress_ifindex;
	q.l4_protocol = f->proto;
	q.sport = f->sport;
	q.dport = f->dport;
	if (be->family == PH_AF_INET) {
		q.family = PH_AF_INET;
		q.ipv4_src = f->src.v4;
		q.ipv4_dst = be->addr.v4;
	} else {
		q.family = PH_AF_INET6;
		__builtin_memcpy(q.ipv6_src, f->src.w, 16);
		__builtin_memcpy(q.ipv6_dst, be->addr.w, 16);
	}
	nh->ifindex = 0;
	rc = bpf_fib_lookup(ctx, &q, sizeof(q), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return DSR_HOP_UNREACHABLE;
	if (be->family == PH_AF_INET ? q.ipv4_dst != be->addr.v4 :
	    (q.ipv6_dst[0] != be->addr.w[0] || q.ipv6_dst[1] != be->addr.w[1] ||
	     q.ipv6_dst[2] != be->addr.w[2] || q.ipv6_dst[3] != be->addr.w[3]))
		return DSR_HOP_OFFLINK;
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return DSR_HOP_NO_NEIGH;
	nh->ifindex = q.ifindex;
	__builtin_memcpy(nh->smac, q.smac, 6);
	__builtin_memcpy(nh->dmac, q.dmac, 6);
	return DSR_HOP_OK;
}

/**
 * dsr_l2_forward() - send the frame @p, addressed to a DSR frontend, to
 * the backend Maglev picks for the client -> VIP flow @f (the packet's own
 * flow, or the one an ICMP error quotes) by MAC rewrite. The next hop is
 * cached per backend (ph_be_nh) like the NAT path's; only an on-link
 * resolution is ever cached here.
 * Returns: the verdict, every exit counted.
 */
static __always_inline int dsr_l2_forward(struct ph_ctx *ctx, struct packet *p, const struct ph_fe_value *fe,
					  const struct ph_flow *f)
{
	struct ph_nexthop nh;
	struct ph_be_nh *c;
	struct ph_backend *be;
	__u64 now;
	__u32 be_id;

	if (!fe->backends)
		return count_and(PH_STAT_NO_BACKEND, PH_DROP);
	be_id = maglev_pick(fe, flow_hash(f));
	be = be_id ? backend_get(be_id) : NULL;
	if (!be || be->family != f->family)
		return count_and(PH_STAT_NO_BACKEND, PH_DROP);
	/* This node is the backend (it holds the VIP as a DSR backend must): the kernel delivers. */
	if (be->flags & PH_BE_LOCAL)
		return count_and(PH_STAT_LOCAL_BACKEND, PH_PASS);
	now = bpf_ktime_get_coarse_ns();
	c = bpf_map_lookup_elem(&ph_be_nh, &be_id);
	if (c && !nh_stale(&c->nh, c->fib_at, now)) {
		nh = c->nh;
	} else {
		switch (dsr_resolve(ctx, f, be, &nh)) {
		case DSR_HOP_OK:
			break;
		case DSR_HOP_NO_NEIGH:
			/* The kernel cannot forward a frame addressed to the VIP to a backend: the agent keeps backend neighbours resolved. */
			return count_and(PH_STAT_DSR_NO_NEIGH, PH_DROP);
		case DSR_HOP_OFFLINK:
			return count_and(PH_STAT_DSR_OFFLINK, PH_DROP);
		default:
			return count_and(PH_STAT_FIB_FAIL, PH_DROP);
		}
		if (c) {
			c->nh = nh;
			c->fib_at = now;
		}
	}
	traffic_add(&ph_fe_stats, fe->id, p->l3_len);
	traffic_add(&ph_be_stats, be_id, p->l3_len);
	stat_inc(PH_STAT_DSR_L2);
	return nh_transmit(ctx, p->eth, &nh);
}

/* A packet of a DSR frontend: to the backend of its own flow. */
static __always_inline int dsr_l2_dispatch(struct ph_ctx *ctx, struct packet *p, const struct ph_fe_value *fe)
{
	return dsr_l2_forward(ctx, p, fe, &p->flow);
}

/**
 * dsr_icmp_error() - an ICMP error to a DSR frontend's address about a
 * reply (VIP -> client, quoted; @k is that quote read backwards, the
 * client -> VIP flow). The backend sent the reply, holds the VIP and the
 * socket, so the error goes to it untouched (a router's fragmentation
 * needed / packet too big lowers that socket's path MTU).
 * Returns: a verdict, or -1 when @k is not a DSR frontend's flow.
 */
static __always_inline int dsr_icmp_error(struct ph_ctx *ctx, struct packet *p, const struct ph_flow *k)
{
	const struct ph_fe_value *fe = frontend_get(k);

	if (!fe || !(fe->flags & PH_FE_DSR))
		return -1;
	stat_inc(PH_STAT_DSR_ICMP);
	return dsr_l2_forward(ctx, p, fe, k);
}

#endif
