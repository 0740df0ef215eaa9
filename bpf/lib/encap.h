/* SPDX-License-Identifier: GPL-2.0 */
/*
 * DSR encapsulated dispatch: the client's packet, untouched, inside an
 * outer IPv4 (IPIP, protocol 4) or IPv6 (IP6IP6, next header 41) header
 * from this node's egress-interface address to the backend. The backend
 * decapsulates (pharos' tc program, bpf/decap.bpf.c, or the kernel's
 * ipip / ip6_tunnel) and answers the client from the VIP directly.
 * Why IPIP and not GUE: bpf/README.md, "Encapsulation".
 */
#ifndef PHAROS_ENCAP_H
#define PHAROS_ENCAP_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "lib/ctx.h"
#include "lib/maps.h"
#include "lib/parsing.h"
#include "lib/csum.h"
#include "lib/stats.h"
#include "lib/fib.h"
#include "lib/icmp.h"

/* Bytes the outer header adds; the backend's MTU budget loses as much. */
#define PH_ENCAP4_LEN 20
#define PH_ENCAP6_LEN 40
#define PH_ENCAP_TTL 64

/**
 * encap_mtu_exceeded() - the MTU of @ifindex when the packet @p with an
 * outer header of @overhead bytes does not fit it, else 0. A GSO skb (tc)
 * is cut to size when it leaves, its segments made smaller for the header.
 */
static __always_inline __u32 encap_mtu_exceeded(struct ph_ctx *ctx, const struct packet *p, __u32 ifindex, __u32 overhead)
{
	/* A non-zero input is the L3 length to check (bpf_check_mtu adds the device's L2 header). */
	__u32 mtu = p->l3_len + overhead;

	if (mtu <= PH_MTU_CHECK_MIN || !ifindex || ctx_is_gso(ctx))
		return 0;
	if (bpf_check_mtu(ctx, ifindex, &mtu, 0, 0) != BPF_MTU_CHK_RET_FRAG_NEEDED)
		return 0;
	return mtu > overhead + 68 ? mtu - overhead : 68;
}

/**
 * encap_push() - put Ethernet (to @nh) + an outer header from @src to the
 * backend @be in front of the IP packet @p. The outer header copies the
 * inner DSCP/ECN; IPv6 carries 19 bits of @hash in its flow label (routers hash it:
 * ECMP entropy, as GUE's source port would give), IPv4 sets DF (the PMTU
 * was checked before).
 * Returns: 0, or -1 (VLAN-tagged frame, helper refused): the caller drops.
 */
static __always_inline int encap_push(struct ph_ctx *ctx, struct packet *p, const struct ph_backend *be,
				      const union ph_addr *src, const struct ph_nexthop *nh, __u32 hash)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 inner_len = p->l3_len;
	__u8 inner_tos, next;
	struct ethhdr *eth;
	int outer_v6;

	/* Only IP right after Ethernet: the outer header takes the place of a tag otherwise. */
	if (p->l3 != data + ETH_HLEN)
		return -1;
	if (p->flow.family == PH_AF_INET) {
		struct iphdr *in = p->l3;

		if ((void *)(in + 1) > data_end)
			return -1;
		inner_tos = in->tos;
	} else {
		__u8 *in = p->l3;

		if ((void *)(in + 2) > data_end)
			return -1;
		inner_tos = ((in[0] & 0x0f) << 4) | (in[1] >> 4); /* traffic class */
	}
	outer_v6 = be->family == PH_AF_INET6;
	if (ctx_encap_room(ctx, outer_v6 ? PH_ENCAP6_LEN : PH_ENCAP4_LEN, outer_v6))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if (data + ETH_HLEN + PH_ENCAP6_LEN > data_end)
		return -1;
	next = p->flow.family == PH_AF_INET ? IPPROTO_IPIP : IPPROTO_IPV6;
	if (!outer_v6) {
		struct iphdr *ip = data + ETH_HLEN;

		eth->h_proto = bpf_htons(ETH_P_IP);
		ip->version = 4;
		ip->ihl = 5;
		ip->tos = inner_tos;
		ip->tot_len = bpf_htons(inner_len + PH_ENCAP4_LEN);
		ip->id = 0;
		ip->frag_off = bpf_htons(0x4000); /* DF */
		ip->ttl = PH_ENCAP_TTL;
		ip->protocol = next;
		ip->check = 0;
		ip->saddr = src->v4;
		ip->daddr = be->addr.v4;
		ip->check = csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)ip, 20, 0));
	} else {
		struct ipv6hdr *ip6 = data + ETH_HLEN;

		eth->h_proto = bpf_htons(ETH_P_IPV6);
		/* Bit 19 of the label is the backends' hand-off mark (handoff.h). */
		*(__be32 *)ip6 = bpf_htonl(0x60000000 | ((__u32)inner_tos << 20) | (hash & 0x7ffff));
		ip6->payload_len = bpf_htons(inner_len);
		ip6->nexthdr = next;
		ip6->hop_limit = PH_ENCAP_TTL;
		__builtin_memcpy(&ip6->saddr, src->w, 16);
		__builtin_memcpy(&ip6->daddr, be->addr.w, 16);
	}
	p->eth = eth;
	return 0;
}

/**
 * encap_forward() - send the DSR packet @p to backend @be through @nh in
 * IPIP / IP6IP6, from the address of the interface it leaves by (its SNAT
 * source: ph_if_snat, else ph_runtime). Too big once encapsulated: the
 * sender gets fragmentation needed / packet too big with the MTU left for
 * the inner packet (the existing icmp_too_big, as Katran does), so TCP and
 * UDP senders doing PMTU discovery adapt; what cannot be answered is
 * dropped, counted.
 * Returns: the verdict, every exit counted.
 */
static __always_inline int encap_forward(struct ph_ctx *ctx, struct packet *p, const struct ph_backend *be,
					 const struct ph_nexthop *nh, __u32 hash)
{
	__u32 overhead = be->family == PH_AF_INET ? PH_ENCAP4_LEN : PH_ENCAP6_LEN;
	struct ph_runtime *rt = runtime_get();
	const union ph_addr *src;
	__u32 mtu;

	if (!rt)
		return count_and(PH_STAT_DSR_ENCAP_FAIL, PH_DROP);
	src = snat_source(rt, nh->ifindex, be->family);
	if (!(src->w[0] | src->w[1] | src->w[2] | src->w[3]))
		return count_and(PH_STAT_DSR_ENCAP_FAIL, PH_DROP);
	mtu = encap_mtu_exceeded(ctx, p, nh->ifindex, overhead);
	if (mtu) {
		int rc = -1;

		if (p->flow.proto == IPPROTO_TCP || p->flow.proto == IPPROTO_UDP)
			rc = icmp_too_big(ctx, p, mtu);
		return rc >= 0 ? rc : count_and(PH_STAT_DSR_TOO_BIG, PH_DROP);
	}
	if (encap_push(ctx, p, be, src, nh, hash))
		return count_and(PH_STAT_DSR_ENCAP_FAIL, PH_DROP);
	stat_inc(PH_STAT_DSR_ENCAP);
	return nh_transmit(ctx, p->eth, nh);
}

#endif
