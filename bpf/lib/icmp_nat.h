/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ICMPv4 errors about NATed flows (destination unreachable, incl.
 * fragmentation needed, and time exceeded), translated so that the host
 * that sent the offending packet gets them in its own terms:
 *
 *   to a VIP, quoting VIP -> client   (a router on the client side):
 *     conntrack of client -> VIP => to the backend, quoting backend -> SNAT address
 *   to our SNAT address, quoting SNAT -> backend (the backend or its side):
 *     reverse entry            => to the client, quoting client -> VIP
 *
 * Outer and quoted addresses, quoted ports, the quoted IPv4 checksum and
 * the ICMP checksum are all rewritten incrementally. Needs conntrack, NAT
 * and FIB helpers (include after them). IPv6 is not translated yet.
 */
#ifndef PHAROS_ICMP_NAT_H
#define PHAROS_ICMP_NAT_H

#include <linux/bpf.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include "lib/csum.h"
#include "lib/maps.h"
#include "lib/parsing.h"
#include "lib/stats.h"
#include "lib/fib.h"

#define PH_ICMP_DEST_UNREACH 3
#define PH_ICMP_TIME_EXCEEDED 11

struct icmp4_xlat {
	__be32 outer_src, outer_dst, inner_src, inner_dst;
	__be16 inner_sport, inner_dport;
};

static __always_inline void icmp4_apply(struct iphdr *ip, __u8 *icmp, struct iphdr *in, __be16 *ports, const struct icmp4_xlat *x)
{
	__u32 d;
	__u16 old_check;

	d = csum_diff32(0, ip->saddr, x->outer_src);
	d = csum_diff32(d, ip->daddr, x->outer_dst);
	ip->check = csum_apply(ip->check, d);
	ip->saddr = x->outer_src;
	ip->daddr = x->outer_dst;

	d = csum_diff32(0, in->saddr, x->inner_src);
	d = csum_diff32(d, in->daddr, x->inner_dst);
	old_check = in->check;
	in->check = csum_apply(in->check, d);
	/* A quoted UDP checksum is inside the 8 bytes: keep it true to the rewritten quote (0 = none stays 0). */
	if (in->protocol == IPPROTO_UDP && ports[3]) {
		__u32 l4 = csum_diff16(csum_diff16(d, ports[0], x->inner_sport), ports[1], x->inner_dport);
		__u16 old_l4 = ports[3];

		ports[3] = csum_apply(ports[3], l4);
		if (!ports[3])
			ports[3] = 0xffff;
		d = csum_diff16(d, old_l4, ports[3]);
	}
	d = csum_diff16(d, old_check, in->check);
	d = csum_diff16(d, ports[0], x->inner_sport);
	d = csum_diff16(d, ports[1], x->inner_dport);
	in->saddr = x->inner_src;
	in->daddr = x->inner_dst;
	ports[0] = x->inner_sport;
	ports[1] = x->inner_dport;
	*(__u16 *)(icmp + 2) = csum_apply(*(__u16 *)(icmp + 2), d);
}

/**
 * icmp4_error_nat() - translate an ICMPv4 error about one of our flows.
 * Returns: an XDP verdict, or XDP_PASS untouched when it is not about one.
 */
static __always_inline int icmp4_error_nat(struct xdp_md *ctx, struct packet *p)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *ip = p->l3;
	__u8 *icmp = p->l4;
	struct iphdr *in;
	__be16 *ports;
	struct ph_flow k = {};
	struct ph_nexthop nh;
	struct icmp4_xlat x;
	enum fib_verdict v;
	__u64 now;

	if ((void *)(ip + 1) > data_end || (void *)(icmp + 8) > data_end)
		return XDP_PASS;
	if (icmp[0] != PH_ICMP_DEST_UNREACH && icmp[0] != PH_ICMP_TIME_EXCEEDED)
		return XDP_PASS;
	in = (void *)(icmp + 8);
	ports = (void *)(in + 1);
	if ((void *)(ports + 4) > data_end || in->ihl != 5 || (in->protocol != IPPROTO_TCP && in->protocol != IPPROTO_UDP))
		return XDP_PASS;
	if (in->saddr != ip->daddr)
		return XDP_PASS; /* an error must be about a packet sent from the address it is sent to */

	/* The flow as the client sees it: client -> VIP. */
	k.src.v4 = in->daddr;
	k.dst.v4 = in->saddr;
	k.sport = ports[1];
	k.dport = ports[0];
	k.proto = in->protocol;
	k.family = PH_AF_INET;
	now = bpf_ktime_get_coarse_ns();

	struct ph_ct *ct = bpf_map_lookup_elem(&ph_ct, &k);
	if (ct) {
		struct ph_backend *be = backend_get(ct->backend_id);
		struct ph_flow o = {};

		if (!be)
			return XDP_PASS;
		x.inner_src = be->addr.v4;
		x.inner_sport = be->port;
		x.inner_dst = (ct->flags & PH_CTF_SNAT) ? ct->snat_addr.v4 : k.src.v4;
		x.inner_dport = (ct->flags & PH_CTF_SNAT) ? ct->snat_port : k.sport;
		x.outer_src = x.inner_dst;
		x.outer_dst = be->addr.v4;
		o.src.v4 = x.outer_src;
		o.dst.v4 = x.outer_dst;
		o.proto = IPPROTO_ICMP;
		o.family = PH_AF_INET;
		v = backend_nexthop(ctx, ct->backend_id, &o, p->l3_len, now, &nh);
	} else {
		struct ph_rev *rv;

		/* Read the other way, the same key is a reply flow as it arrives: backend -> SNAT address. */
		rv = bpf_map_lookup_elem(&ph_rev, &k);
		if (!rv || (rv->flags & PH_CTF_LOCAL))
			return XDP_PASS;
		x.inner_src = rv->new_dst.v4;
		x.inner_sport = rv->new_dport;
		x.inner_dst = rv->new_src.v4;
		x.inner_dport = rv->new_sport;
		x.outer_src = rv->new_src.v4;
		x.outer_dst = rv->new_dst.v4;
		if (!nh_stale(&rv->nh, rv->fib_at, now)) {
			nh = rv->nh;
			v = FIB_FORWARD;
		} else {
			struct ph_flow o = {};

			o.src.v4 = x.outer_src;
			o.dst.v4 = x.outer_dst;
			o.proto = IPPROTO_ICMP;
			o.family = PH_AF_INET;
			v = fib_resolve(ctx, &o, p->l3_len, &nh);
		}
	}
	if (v != FIB_FORWARD && v != FIB_NO_NEIGH)
		return count_and(PH_STAT_FIB_FAIL, XDP_DROP);
	icmp4_apply(ip, icmp, in, ports, &x);
	stat_inc(PH_STAT_ICMP_ERROR_NAT);
	if (v == FIB_NO_NEIGH)
		return count_and(PH_STAT_NO_NEIGH, XDP_PASS);
	return nh_transmit(ctx, p->eth, &nh);
}

#endif
