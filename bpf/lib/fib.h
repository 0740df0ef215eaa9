/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Next-hop resolution with bpf_fib_lookup, and sending a rewritten frame to
 * the next hop. The result is cached per backend (ph_be_nh, one lookup
 * serves every flow to that backend) and per reverse-NAT entry (the next
 * hop back to the client), each re-checked after cfg_fib_refresh_ns.
 */
#ifndef PHAROS_FIB_H
#define PHAROS_FIB_H

#include <linux/bpf.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include "lib/ctx.h"
#include "lib/config.h"
#include "lib/maps.h"
#include "lib/csum.h"
#include "lib/parsing.h"
#include "lib/stats.h"

enum fib_verdict {
	FIB_FORWARD,	/* nh filled: rewrite MACs and transmit */
	FIB_NO_NEIGH,	/* route known, neighbour not: let the kernel resolve */
	FIB_LOCAL,	/* not forwarded: this node's address, or no route (BPF_FIB_LKUP_RET_NOT_FWDED is both) */
	FIB_UNREACHABLE,
};

/**
 * fib_resolve() - look up the next hop for a packet from @src to @dst.
 * @nh: filled on FIB_FORWARD; ifindex 0 otherwise.
 */
static __always_inline enum fib_verdict fib_resolve(struct ph_ctx *ctx, const struct ph_flow *f,
						    __u32 tot_len, struct ph_nexthop *nh)
{
	struct bpf_fib_lookup p = {};
	long rc;

	p.ifindex = ctx->ingress_ifindex;
	p.l4_protocol = f->proto;
	p.sport = f->sport;
	p.dport = f->dport;
	/* No MTU verdict from the FIB (it would fail the lookup): egress_mtu_exceeded judges each large packet. */
	p.tot_len = 0;
	if (f->family == PH_AF_INET) {
		p.family = PH_AF_INET;
		p.ipv4_src = f->src.v4;
		p.ipv4_dst = f->dst.v4;
	} else {
		p.family = PH_AF_INET6;
		__builtin_memcpy(p.ipv6_src, f->src.w, 16);
		__builtin_memcpy(p.ipv6_dst, f->dst.w, 16);
	}
	nh->ifindex = 0;
	rc = bpf_fib_lookup(ctx, &p, sizeof(p), 0);
	switch (rc) {
	case BPF_FIB_LKUP_RET_SUCCESS:
		nh->ifindex = p.ifindex;
		__builtin_memcpy(nh->smac, p.smac, 6);
		__builtin_memcpy(nh->dmac, p.dmac, 6);
		return FIB_FORWARD;
	case BPF_FIB_LKUP_RET_NO_NEIGH:
		/* The egress device is known (set before the neighbour lookup): SNAT picks its address. */
		nh->ifindex = p.ifindex;
		return FIB_NO_NEIGH;
	case BPF_FIB_LKUP_RET_NOT_FWDED:
		return FIB_LOCAL;
	default:
		/* blackhole, unreachable, prohibit, forwarding disabled, frag needed, unsupported */
		return FIB_UNREACHABLE;
	}
}

/* A cached next hop that was never resolved, or is older than cfg_fib_refresh_ns. */
static __always_inline int nh_stale(const struct ph_nexthop *nh, __u64 fib_at, __u64 now)
{
	return !nh->ifindex || now - fib_at > cfg_fib_refresh_ns;
}

/**
 * backend_nexthop() - next hop toward backend @be_id for the rewritten
 * packet @out: from the per-backend cache while it is fresh, else from the
 * FIB (and cached when complete; an unresolved neighbour is retried by the
 * next packet).
 */
static __always_inline enum fib_verdict backend_nexthop(struct ph_ctx *ctx, __u32 be_id, const struct ph_flow *out,
							__u32 tot_len, __u64 now, struct ph_nexthop *nh)
{
	struct ph_be_nh *c = bpf_map_lookup_elem(&ph_be_nh, &be_id);
	enum fib_verdict v;

	if (c && !nh_stale(&c->nh, c->fib_at, now)) {
		*nh = c->nh;
		return FIB_FORWARD;
	}
	v = fib_resolve(ctx, out, tot_len, nh);
	if (c && v == FIB_FORWARD) {
		c->nh = *nh;
		c->fib_at = now;
	}
	return v;
}

/**
 * ttl_decrement() - what a router does to a packet it forwards: one less
 * IPv4 TTL (header checksum adjusted) or IPv6 hop limit. Only for frames we
 * transmit ourselves; a frame passed to the kernel is forwarded (and
 * decremented) or delivered there. Callers turned TTL <= 1 away before.
 */
static __always_inline void ttl_decrement(struct ph_ctx *ctx, struct packet *p)
{
	void *data_end = (void *)(long)ctx->data_end;

	if (p->flow.family == PH_AF_INET) {
		struct iphdr *ip = p->l3;
		__u16 old;

		if ((void *)(ip + 1) > data_end)
			return;
		old = *(__u16 *)&ip->ttl; /* TTL shares a checksum word with the protocol */
		ip->ttl--;
		ip->check = csum_apply(ip->check, csum_diff16(0, old, *(__u16 *)&ip->ttl));
	} else {
		struct ipv6hdr *ip6 = p->l3;

		if ((void *)(ip6 + 1) > data_end)
			return;
		ip6->hop_limit--;
	}
}

/**
 * nh_transmit() - rewrite the MACs and send the frame to the cached next hop.
 * Same interface: XDP_TX (tc: redirect to it); another one: bpf_redirect.
 */
static __always_inline int nh_transmit(struct ph_ctx *ctx, struct ethhdr *eth,
				       const struct ph_nexthop *nh)
{
	int act;

	__builtin_memcpy(eth->h_source, nh->smac, 6);
	__builtin_memcpy(eth->h_dest, nh->dmac, 6);
	if (nh->ifindex == ctx->ingress_ifindex) {
		stat_inc(PH_STAT_FWD_TX);
		return ctx_tx(ctx);
	}
	act = ctx_redirect(ctx, nh->ifindex);
	if (act == PH_DROP) {
		stat_inc(PH_STAT_REDIRECT_FAIL);
		return PH_DROP;
	}
	stat_inc(PH_STAT_FWD_REDIRECT);
	return act;
}

/**
 * nh_forward() - send a rewritten packet to @nh (@v FIB_FORWARD), or to the
 * kernel when the neighbour is not resolved yet (FIB_NO_NEIGH): the first
 * packet is not lost, the kernel forwards it and resolves the neighbour, and
 * later packets take the fast path.
 */
static __always_inline int nh_forward(struct ph_ctx *ctx, struct packet *p, enum fib_verdict v,
				      const struct ph_nexthop *nh)
{
	if (v == FIB_NO_NEIGH)
		return count_and(PH_STAT_NO_NEIGH, PH_PASS);
	ttl_decrement(ctx, p);
	return nh_transmit(ctx, p->eth, nh);
}

#endif
