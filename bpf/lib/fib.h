/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Next-hop resolution with bpf_fib_lookup, cached per flow (ph_nexthop) so
 * established packets skip the FIB.
 */
#ifndef PHAROS_FIB_H
#define PHAROS_FIB_H

#include <linux/bpf.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include "lib/maps.h"
#include "lib/csum.h"
#include "lib/parsing.h"

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

#endif
