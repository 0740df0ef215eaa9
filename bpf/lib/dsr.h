/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Direct server return. L2 dispatch (IPVS-DR style): the frame goes to the
 * Maglev-picked backend with only its MACs rewritten. Encapsulated
 * dispatch (Katran style, lib/encap.h): a backend behind a router gets the
 * packet in IPIP / IP6IP6. Either way the backend holds the VIP and
 * answers the client directly. No per-flow
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
#include "lib/encap.h"

enum dsr_hop {
	DSR_HOP_ONLINK,		/* nh filled: the backend's own MAC */
	DSR_HOP_OFFLINK,	/* nh filled: the router's MAC; only encapsulation gets there */
	DSR_HOP_NO_NEIGH,	/* the next hop's MAC is not resolved yet */
	DSR_HOP_UNREACHABLE,	/* no route, or one of this node's addresses */
};

/**
 * dsr_resolve() - the next hop toward backend @be and whether it is the
 * backend itself: bpf_fib_lookup replaces the destination by the gateway
 * when the route has one, so a changed destination means a frame sent
 * there as it is (addressed to the VIP) would reach a router, which would
 * send it straight back to us.
 */
static __always_inline enum dsr_hop dsr_resolve(struct ph_ctx *ctx, const struct ph_flow *f,
						const struct ph_backend *be, struct ph_nexthop *nh)
{
	struct bpf_fib_lookup q = {};
	int onlink;
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
	onlink = be->family == PH_AF_INET ? q.ipv4_dst == be->addr.v4 :
		 (q.ipv6_dst[0] == be->addr.w[0] && q.ipv6_dst[1] == be->addr.w[1] &&
		  q.ipv6_dst[2] == be->addr.w[2] && q.ipv6_dst[3] == be->addr.w[3]);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return DSR_HOP_NO_NEIGH;
	nh->ifindex = q.ifindex;
	__builtin_memcpy(nh->smac, q.smac, 6);
	__builtin_memcpy(nh->dmac, q.dmac, 6);
	return onlink ? DSR_HOP_ONLINK : DSR_HOP_OFFLINK;
}

/**
 * dsr_nexthop() - the next hop toward @be from the per-backend cache
 * (ph_be_nh, as the NAT path's) while it is fresh and the backend's
 * on-link bit is known, else from the FIB, recording both. The bits live
 * in the backend entry: an agent write clears them and the next packet
 * resolves again.
 */
static __always_inline enum dsr_hop dsr_nexthop(struct ph_ctx *ctx, const struct ph_flow *f, __u32 be_id,
						struct ph_backend *be, struct ph_nexthop *nh)
{
	struct ph_be_nh *c = bpf_map_lookup_elem(&ph_be_nh, &be_id);
	__u64 now = bpf_ktime_get_coarse_ns();
	enum dsr_hop hop;

	if (c && !nh_stale(&c->nh, c->fib_at, now) && (be->flags & (PH_BE_ONLINK | PH_BE_OFFLINK))) {
		*nh = c->nh;
		return be->flags & PH_BE_ONLINK ? DSR_HOP_ONLINK : DSR_HOP_OFFLINK;
	}
	hop = dsr_resolve(ctx, f, be, nh);
	if (hop != DSR_HOP_ONLINK && hop != DSR_HOP_OFFLINK)
		return hop;
	be->flags = (be->flags & ~(PH_BE_ONLINK | PH_BE_OFFLINK)) | (hop == DSR_HOP_ONLINK ? PH_BE_ONLINK : PH_BE_OFFLINK);
	if (c) {
		c->nh = *nh;
		c->fib_at = now;
	}
	return hop;
}

/**
 * dsr_forward() - send the frame @p, addressed to a DSR frontend, to the
 * backend Maglev picks for the client -> VIP flow @f (the packet's own
 * flow, or the one an ICMP error quotes): by MAC rewrite when the backend
 * is on a segment of this node (L2 dispatch), else in IPIP / IP6IP6
 * (lib/encap.h); the frontend may ask for one of the two only.
 * Returns: the verdict, every exit counted.
 */
static __always_inline int dsr_forward(struct ph_ctx *ctx, struct packet *p, const struct ph_fe_value *fe,
				       const struct ph_flow *f)
{
	struct ph_nexthop nh;
	struct ph_backend *be;
	enum dsr_hop hop;
	__u32 be_id, hash;

	if (!fe->backends)
		return count_and(PH_STAT_NO_BACKEND, PH_DROP);
	hash = flow_hash(f);
	be_id = maglev_pick(fe, hash);
	be = be_id ? backend_get(be_id) : NULL;
	if (!be || be->family != f->family)
		return count_and(PH_STAT_NO_BACKEND, PH_DROP);
	/* This node is the backend (it holds the VIP as a DSR backend must): the kernel delivers. */
	if (be->flags & PH_BE_LOCAL)
		return count_and(PH_STAT_LOCAL_BACKEND, PH_PASS);
	hop = dsr_nexthop(ctx, f, be_id, be, &nh);
	if (hop == DSR_HOP_NO_NEIGH)
		/* The kernel cannot forward a frame addressed to the VIP to a backend: the agent keeps next hops resolved. */
		return count_and(PH_STAT_DSR_NO_NEIGH, PH_DROP);
	if (hop == DSR_HOP_UNREACHABLE)
		return count_and(PH_STAT_FIB_FAIL, PH_DROP);
	traffic_add(&ph_fe_stats, fe->id, p->l3_len);
	traffic_add(&ph_be_stats, be_id, p->l3_len);
	if (hop == DSR_HOP_ONLINK && !(fe->flags & PH_FE_DSR_ENCAP)) {
		stat_inc(PH_STAT_DSR_L2);
		return nh_transmit(ctx, p->eth, &nh);
	}
	if (fe->flags & PH_FE_DSR_L2)
		return count_and(PH_STAT_DSR_OFFLINK, PH_DROP);
	return encap_forward(ctx, p, be, &nh, hash);
}

/* A packet of a DSR frontend: to the backend of its own flow. */
static __always_inline int dsr_dispatch(struct ph_ctx *ctx, struct packet *p, const struct ph_fe_value *fe)
{
	return dsr_forward(ctx, p, fe, &p->flow);
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
	return dsr_forward(ctx, p, fe, k);
}

#endif
