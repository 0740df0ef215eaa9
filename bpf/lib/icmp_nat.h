/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ICMP errors about NATed flows (ICMPv4 destination unreachable, incl.
 * fragmentation needed, and time exceeded; ICMPv6 destination unreachable,
 * packet too big and time exceeded), translated so that the host that sent
 * the offending packet gets them in its own terms:
 *
 *   to a VIP, quoting VIP -> client   (a router on the client side):
 *     conntrack of client -> VIP => to the backend, quoting backend -> SNAT address
 *   to our SNAT address, quoting SNAT -> backend (the backend or its side):
 *     reverse entry            => to the client, quoting client -> VIP
 *   to a DSR frontend's VIP, quoting VIP -> client:
 *     untouched to the backend Maglev picks for client -> VIP (lib/dsr.h)
 *
 * Outer and quoted addresses, quoted ports, the quoted IPv4 and UDP
 * checksums and the ICMP checksum are all rewritten incrementally.
 */
#ifndef PHAROS_ICMP_NAT_H
#define PHAROS_ICMP_NAT_H

#include <linux/bpf.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include "lib/ctx.h"
#include "lib/csum.h"
#include "lib/maps.h"
#include "lib/parsing.h"
#include "lib/stats.h"
#include "lib/fib.h"
#include "lib/dsr.h"

#define PH_ICMP_DEST_UNREACH 3
#define PH_ICMP_TIME_EXCEEDED 11
#define PH_ICMP6_DEST_UNREACH 1
#define PH_ICMP6_PACKET_TOO_BIG 2
#define PH_ICMP6_TIME_EXCEEDED 3

/* The translated error: outer addresses, quoted addresses and ports. */
struct icmp_xlat {
	union ph_addr outer_src, outer_dst, inner_src, inner_dst;
	__be16 inner_sport, inner_dport;
};

/**
 * icmp_error_target() - whose flow the quoted packet belongs to. @k is the
 * quote read backwards: the client -> VIP flow when the error came from the
 * client side, or the reply flow backend -> SNAT address as it arrives when
 * it came from the backend side. Fills @x and the next hop @nh.
 * Returns: a fib_verdict, or -1 when the quote is about no flow of ours.
 */
static __always_inline int icmp_error_target(struct ph_ctx *ctx, const struct ph_flow *k, __u32 l3_len,
					     struct icmp_xlat *x, struct ph_nexthop *nh)
{
	__u8 icmp_proto = k->family == PH_AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6;
	__u64 now = bpf_ktime_get_coarse_ns();
	struct ph_flow o = {};
	struct ph_rev *rv;
	struct ph_ct *ct;

	o.proto = icmp_proto;
	o.family = k->family;
	ct = bpf_map_lookup_elem(&ph_ct, k);
	if (ct) {
		struct ph_backend *be = backend_get(ct->backend_id);
		int snat = ct->flags & PH_CTF_SNAT;

		if (!be)
			return -1;
		x->inner_src = be->addr;
		x->inner_sport = be->port;
		x->inner_dst = snat ? ct->snat_addr : k->src;
		x->inner_dport = snat ? ct->snat_port : k->sport;
		x->outer_src = x->inner_dst;
		x->outer_dst = be->addr;
		o.src = x->outer_src;
		o.dst = x->outer_dst;
		return backend_nexthop(ctx, ct->backend_id, &o, l3_len, now, nh);
	}
	/* Read the other way, the same key is a reply flow as it arrives: backend -> SNAT address. */
	rv = bpf_map_lookup_elem(&ph_rev, k);
	if (!rv || (rv->flags & PH_CTF_LOCAL))
		return -1;
	x->inner_src = rv->new_dst;
	x->inner_sport = rv->new_dport;
	x->inner_dst = rv->new_src;
	x->inner_dport = rv->new_sport;
	x->outer_src = rv->new_src;
	x->outer_dst = rv->new_dst;
	if (!nh_stale(&rv->nh, rv->fib_at, now)) {
		*nh = rv->nh;
		return FIB_FORWARD;
	}
	o.src = x->outer_src;
	o.dst = x->outer_dst;
	return fib_resolve(ctx, &o, l3_len, nh);
}

/* icmp_error_route(): the error is ours to translate; @v and @nh say where it goes. */
#define PH_ICMP_TRANSLATE (-1)

/**
 * icmp_error_route() - the checks both families make once the quote is read
 * into @k: TTL, whose flow it is (icmp_error_target) and whether its next
 * hop can be reached.
 * Returns: PH_ICMP_TRANSLATE with @x, @nh and @v filled, else the verdict
 * for the packet as it is.
 */
static __always_inline int icmp_error_route(struct ph_ctx *ctx, const struct packet *p, const struct ph_flow *k,
					    struct icmp_xlat *x, struct ph_nexthop *nh, int *v)
{
	if (p->ttl <= 1)
		return count_and(PH_STAT_TTL_EXCEEDED, PH_PASS);
	*v = icmp_error_target(ctx, k, p->l3_len, x, nh);
	if (*v < 0)
		return PH_PASS;
	if (*v != FIB_FORWARD && *v != FIB_NO_NEIGH)
		return count_and(PH_STAT_FIB_FAIL, PH_DROP);
	return PH_ICMP_TRANSLATE;
}

/* Send the translated error on, or let the kernel resolve the neighbour first. */
static __always_inline int icmp_error_send(struct ph_ctx *ctx, struct packet *p, int v, const struct ph_nexthop *nh)
{
	stat_inc(PH_STAT_ICMP_ERROR_NAT);
	return nh_forward(ctx, p, v, nh);
}

/*
 * A quoted UDP checksum lies inside the 8 quoted bytes: keep it true to the
 * rewritten quote (@l4 = the quote's address and port changes). An IPv4
 * zero checksum ("none") stays zero. Returns the ICMP checksum change.
 */
static __always_inline __u32 icmp_quoted_udp_csum(__be16 *ports, __u32 l4)
{
	__u16 old = ports[3];

	ports[3] = csum_apply(ports[3], l4);
	if (!ports[3])
		ports[3] = 0xffff;
	return csum_diff16(0, old, ports[3]);
}

static __always_inline void icmp4_apply(struct iphdr *ip, __u8 *icmp, struct iphdr *in, __be16 *ports, const struct icmp_xlat *x)
{
	__u32 d;
	__u16 old_check;

	d = csum_diff32(0, ip->saddr, x->outer_src.v4);
	d = csum_diff32(d, ip->daddr, x->outer_dst.v4);
	ip->check = csum_apply(ip->check, d);
	ip->saddr = x->outer_src.v4;
	ip->daddr = x->outer_dst.v4;

	/* ICMPv4 has no pseudo-header: only the quote changes its checksum. */
	d = csum_diff32(0, in->saddr, x->inner_src.v4);
	d = csum_diff32(d, in->daddr, x->inner_dst.v4);
	old_check = in->check;
	in->check = csum_apply(in->check, d);
	if (in->protocol == IPPROTO_UDP && ports[3])
		d = csum_add(d, icmp_quoted_udp_csum(ports, csum_diff16(csum_diff16(d, ports[0], x->inner_sport),
									 ports[1], x->inner_dport)));
	d = csum_diff16(d, old_check, in->check);
	d = csum_diff16(d, ports[0], x->inner_sport);
	d = csum_diff16(d, ports[1], x->inner_dport);
	in->saddr = x->inner_src.v4;
	in->daddr = x->inner_dst.v4;
	ports[0] = x->inner_sport;
	ports[1] = x->inner_dport;
	*(__u16 *)(icmp + 2) = csum_apply(*(__u16 *)(icmp + 2), d);
}

/**
 * icmp4_error_nat() - translate an ICMPv4 error about one of our flows.
 * Returns: an XDP verdict, or XDP_PASS untouched when it is not about one.
 */
static __always_inline int icmp4_error_nat(struct ph_ctx *ctx, struct packet *p)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *ip = p->l3;
	__u8 *icmp = p->l4;
	struct iphdr *in;
	__be16 *ports;
	struct ph_flow k = {};
	struct ph_nexthop nh;
	struct icmp_xlat x = {};
	int v, rc;

	if ((void *)(ip + 1) > data_end || (void *)(icmp + 8) > data_end)
		return PH_PASS;
	if (icmp[0] != PH_ICMP_DEST_UNREACH && icmp[0] != PH_ICMP_TIME_EXCEEDED)
		return PH_PASS;
	in = (void *)(icmp + 8);
	ports = (void *)(in + 1);
	if ((void *)(ports + 4) > data_end || in->ihl != 5 || (in->protocol != IPPROTO_TCP && in->protocol != IPPROTO_UDP))
		return PH_PASS;
	if (in->saddr != ip->daddr)
		return PH_PASS; /* an error must be about a packet sent from the address it is sent to */

	k.src.v4 = in->daddr;
	k.dst.v4 = in->saddr;
	k.sport = ports[1];
	k.dport = ports[0];
	k.proto = in->protocol;
	k.family = PH_AF_INET;
	rc = dsr_icmp_error(ctx, p, &k);
	if (rc >= 0)
		return rc;
	rc = icmp_error_route(ctx, p, &k, &x, &nh, &v);
	if (rc != PH_ICMP_TRANSLATE)
		return rc;
	icmp4_apply(ip, icmp, in, ports, &x);
	return icmp_error_send(ctx, p, v, &nh);
}

static __always_inline void icmp6_apply(struct ipv6hdr *ip6, __u8 *icmp, struct ipv6hdr *in, __be16 *ports, const struct icmp_xlat *x)
{
	__u32 d, a;

	/* The ICMPv6 checksum covers a pseudo-header: the outer addresses count as well as the quote. */
	d = csum_diff_addr(0, (const union ph_addr *)&ip6->saddr, &x->outer_src, PH_AF_INET6);
	d = csum_diff_addr(d, (const union ph_addr *)&ip6->daddr, &x->outer_dst, PH_AF_INET6);
	a = csum_diff_addr(0, (const union ph_addr *)&in->saddr, &x->inner_src, PH_AF_INET6);
	a = csum_diff_addr(a, (const union ph_addr *)&in->daddr, &x->inner_dst, PH_AF_INET6);
	d = csum_add(d, a);
	if (in->nexthdr == IPPROTO_UDP)
		d = csum_add(d, icmp_quoted_udp_csum(ports, csum_diff16(csum_diff16(a, ports[0], x->inner_sport),
									 ports[1], x->inner_dport)));
	d = csum_diff16(d, ports[0], x->inner_sport);
	d = csum_diff16(d, ports[1], x->inner_dport);
	__builtin_memcpy(&ip6->saddr, x->outer_src.w, 16);
	__builtin_memcpy(&ip6->daddr, x->outer_dst.w, 16);
	__builtin_memcpy(&in->saddr, x->inner_src.w, 16);
	__builtin_memcpy(&in->daddr, x->inner_dst.w, 16);
	ports[0] = x->inner_sport;
	ports[1] = x->inner_dport;
	*(__u16 *)(icmp + 2) = csum_apply(*(__u16 *)(icmp + 2), d);
}

/**
 * icmp6_error_nat() - translate an ICMPv6 error (destination unreachable,
 * packet too big, time exceeded) about one of our flows. Errors behind
 * extension headers, or quoting a packet with them, are left alone.
 * Returns: an XDP verdict, or XDP_PASS untouched when it is not about one.
 */
static __always_inline int icmp6_error_nat(struct ph_ctx *ctx, struct packet *p)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct ipv6hdr *ip6 = p->l3;
	struct ipv6hdr *in;
	struct ph_flow k = {};
	struct ph_nexthop nh;
	struct icmp_xlat x = {};
	__be16 *ports;
	__u8 *icmp;
	int v, rc;

	if ((void *)(ip6 + 1) > data_end || p->l4 != (void *)(ip6 + 1))
		return PH_PASS;
	icmp = (__u8 *)(ip6 + 1);
	in = (void *)(icmp + 8);
	ports = (void *)(in + 1);
	if ((void *)(ports + 4) > data_end)
		return PH_PASS;
	if (icmp[0] != PH_ICMP6_DEST_UNREACH && icmp[0] != PH_ICMP6_PACKET_TOO_BIG && icmp[0] != PH_ICMP6_TIME_EXCEEDED)
		return PH_PASS;
	if (in->nexthdr != IPPROTO_TCP && in->nexthdr != IPPROTO_UDP)
		return PH_PASS;
	__builtin_memcpy(k.src.w, &in->daddr, 16);
	__builtin_memcpy(k.dst.w, &in->saddr, 16);
	if (k.dst.w[0] != ip6->daddr.in6_u.u6_addr32[0] || k.dst.w[1] != ip6->daddr.in6_u.u6_addr32[1] ||
	    k.dst.w[2] != ip6->daddr.in6_u.u6_addr32[2] || k.dst.w[3] != ip6->daddr.in6_u.u6_addr32[3])
		return PH_PASS; /* an error must be about a packet sent from the address it is sent to */
	k.sport = ports[1];
	k.dport = ports[0];
	k.proto = in->nexthdr;
	k.family = PH_AF_INET6;
	rc = dsr_icmp_error(ctx, p, &k);
	if (rc >= 0)
		return rc;
	rc = icmp_error_route(ctx, p, &k, &x, &nh, &v);
	if (rc != PH_ICMP_TRANSLATE)
		return rc;
	icmp6_apply(ip6, icmp, in, ports, &x);
	return icmp_error_send(ctx, p, v, &nh);
}

#endif
