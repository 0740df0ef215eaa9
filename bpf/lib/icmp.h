/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ICMP/ICMPv6 helpers: the ICMPv6 checksum (pseudo-header + message) the
 * NDP responder needs, and echo replies for service addresses (ph_vips),
 * built in place, and "fragmentation needed" / "packet too big" for a
 * packet we would forward onto a link whose MTU it exceeds (XDP cannot
 * fragment, and a redirect of an oversized frame is dropped silently).
 * ICMP errors others send about NATed flows are translated in icmp_nat.h.
 */
#ifndef PHAROS_ICMP_H
#define PHAROS_ICMP_H

#include <linux/types.h>
#include <linux/in.h>
#include <bpf/bpf_endian.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include "lib/csum.h"
#include "lib/maps.h"
#include "lib/parsing.h"
#include "lib/stats.h"

#define PH_ICMP_ECHO_REQUEST 8
#define PH_ICMP_ECHO_REPLY 0
#define PH_ICMP6_ECHO_REQUEST 128
#define PH_ICMP6_ECHO_REPLY 129
/* TTL / hop limit of our replies, as Linux sends by default. */
#define PH_ICMP_REPLY_TTL 64

/**
 * icmp6_csum() - checksum of an ICMPv6 message held in @msg (@words 32-bit
 * words, on the stack) sent from @src to @dst.
 */
static __always_inline __u16 icmp6_csum(const __u32 *src, const __u32 *dst, const __u32 *msg, int words)
{
	__u32 sum = 0;
	int i;

#pragma unroll
	for (i = 0; i < 4; i++) {
		sum = csum_add(sum, src[i]);
		sum = csum_add(sum, dst[i]);
	}
	sum = csum_add(sum, bpf_htonl(words * 4));
	sum = csum_add(sum, bpf_htonl(IPPROTO_ICMPV6));
#pragma unroll
	for (i = 0; i < 8; i++) {
		if (i < words)
			sum = csum_add(sum, msg[i]);
	}
	return csum_fold(sum);
}

static __always_inline int is_service_address(const union ph_addr *a, __u8 family)
{
	struct ph_vip_key k = {};

	k.addr = *a;
	k.family = family;
	return bpf_map_lookup_elem(&ph_vips, &k) != NULL;
}

/**
 * icmp_echo_reply() - answer an ICMP/ICMPv6 echo request to a service
 * address in place: MACs and addresses swapped (the ICMPv6 pseudo-header sum
 * does not change by a swap), type set to reply, TTL/hop limit reset, both
 * checksums adjusted incrementally. The payload is echoed as it came.
 * Returns: XDP_TX, or XDP_PASS when the packet is not an echo request to
 * one of our service addresses.
 */
static __always_inline int icmp_echo_reply(struct ph_ctx *ctx, struct packet *p)
{
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *icmp = p->l4;
	__u16 old_word, new_word, *check;
	__u8 mac[6];

	if ((void *)(icmp + 8) > data_end || (void *)(p->eth + 1) > data_end)
		return PH_PASS;
	/* The 8-byte header must lie inside the IP datagram, not in trailing frame padding. */
	if ((void *)icmp + 8 > p->l3 + p->l3_len)
		return PH_PASS;
	if (icmp[1] != 0 || icmp[0] != (p->flow.family == PH_AF_INET ? PH_ICMP_ECHO_REQUEST : PH_ICMP6_ECHO_REQUEST))
		return PH_PASS;
	if (!is_service_address(&p->flow.dst, p->flow.family))
		return PH_PASS;

	old_word = *(__u16 *)icmp;
	icmp[0] = p->flow.family == PH_AF_INET ? PH_ICMP_ECHO_REPLY : PH_ICMP6_ECHO_REPLY;
	new_word = *(__u16 *)icmp;
	check = (__u16 *)(icmp + 2);
	*check = csum_apply(*check, csum_diff16(0, old_word, new_word));

	if (p->flow.family == PH_AF_INET) {
		struct iphdr *ip = p->l3;

		if ((void *)(ip + 1) > data_end)
			return PH_PASS;
		old_word = *(__u16 *)&ip->ttl;
		ip->ttl = PH_ICMP_REPLY_TTL;
		ip->check = csum_apply(ip->check, csum_diff16(0, old_word, *(__u16 *)&ip->ttl));
		ip->saddr = p->flow.dst.v4;
		ip->daddr = p->flow.src.v4;
	} else {
		struct ipv6hdr *ip6 = p->l3;

		if ((void *)(ip6 + 1) > data_end)
			return PH_PASS;
		ip6->hop_limit = PH_ICMP_REPLY_TTL;
		__builtin_memcpy(&ip6->saddr, p->flow.dst.w, 16);
		__builtin_memcpy(&ip6->daddr, p->flow.src.w, 16);
	}
	__builtin_memcpy(mac, p->eth->h_source, 6);
	__builtin_memcpy(p->eth->h_source, p->eth->h_dest, 6);
	__builtin_memcpy(p->eth->h_dest, mac, 6);
	stat_inc(PH_STAT_ICMP_ECHO_REPLY);
	return ctx_tx(ctx);
}

/* Packets up to this L3 length fit every IPv6 link: no MTU check below it. */
#define PH_MTU_CHECK_MIN 1280

/**
 * egress_mtu_exceeded() - the MTU of @ifindex if the current frame does not
 * fit it, else 0. Checked only for packets above PH_MTU_CHECK_MIN.
 */
static __always_inline __u32 egress_mtu_exceeded(struct ph_ctx *ctx, const struct packet *p, __u32 ifindex)
{
	/* A non-zero input is the L3 length to check: the datagram, not the frame with any trailing padding. */
	__u32 mtu = p->l3_len;

	if (p->l3_len <= PH_MTU_CHECK_MIN || !ifindex || ctx_is_gso(ctx))
		return 0;
	if (bpf_check_mtu(ctx, ifindex, &mtu, 0, 0) != BPF_MTU_CHK_RET_FRAG_NEEDED)
		return 0;
	return mtu ? mtu : PH_MTU_CHECK_MIN;
}

/* Original IP header (no options / extension headers) + 8 bytes of L4, the quote RFC 792/4443 receivers need. */
#define PH_QUOTE4 (20 + 8)
#define PH_QUOTE6 (40 + 8)
#define PH_TOO_BIG4_LEN (ETH_HLEN + 20 + 8 + PH_QUOTE4)
#define PH_TOO_BIG6_LEN (ETH_HLEN + 40 + 8 + PH_QUOTE6)

/**
 * icmp_too_big() - turn the (not yet rewritten) packet @p into an ICMP
 * "fragmentation needed" (v4, DF set) or ICMPv6 "packet too big" carrying
 * @mtu, sent back to its sender from the address it was sent to (the VIP
 * for a client, the node's SNAT address for a backend), so the sender's
 * PMTU discovery finds its own socket in the quote.
 * Returns: XDP_TX, or -1 when the packet cannot be quoted this way (IPv4
 * without DF or with options, IPv6 with extension headers): the caller
 * forwards it as before.
 */
static __always_inline int icmp_too_big(struct ph_ctx *ctx, struct packet *p, __u32 mtu)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 quote[PH_QUOTE6];
	__u8 smac[6], dmac[6];
	union ph_addr src = p->flow.dst, dst = p->flow.src;
	__u8 family = p->flow.family;
	struct ethhdr *eth;
	__u32 sum, len;

	if ((void *)(p->eth + 1) > data_end)
		return -1;
	__builtin_memcpy(smac, p->eth->h_dest, 6);
	__builtin_memcpy(dmac, p->eth->h_source, 6);
	if (family == PH_AF_INET) {
		struct iphdr *ip = p->l3;

		if ((void *)ip + PH_QUOTE4 > data_end || ip->ihl != 5 || !(ip->frag_off & bpf_htons(0x4000)))
			return -1;
		__builtin_memcpy(quote, ip, PH_QUOTE4);
		len = PH_TOO_BIG4_LEN;
	} else {
		struct ipv6hdr *ip6 = p->l3;

		if ((void *)ip6 + PH_QUOTE6 > data_end || p->l4 != (void *)(ip6 + 1))
			return -1;
		__builtin_memcpy(quote, ip6, PH_QUOTE6);
		len = PH_TOO_BIG6_LEN;
	}
	/* The frame is longer than PH_MTU_CHECK_MIN and not VLAN-tagged here (l3 right after Ethernet). */
	if (p->l3 != data + ETH_HLEN)
		return -1;
	/* From here on the packet pointers are gone: every failure is a drop. */
	if (ctx_resize(ctx, len))
		return PH_DROP;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if (family == PH_AF_INET) {
		struct iphdr *ip = data + ETH_HLEN;
		__u8 *icmp = (void *)(ip + 1);

		if ((void *)icmp + 8 + PH_QUOTE4 > data_end)
			return PH_DROP;
		eth->h_proto = bpf_htons(ETH_P_IP);
		ip->version = 4;
		ip->ihl = 5;
		ip->tos = 0xc0; /* internetwork control, as Linux sends ICMP errors */
		ip->tot_len = bpf_htons(20 + 8 + PH_QUOTE4);
		ip->id = 0;
		ip->frag_off = 0;
		ip->ttl = PH_ICMP_REPLY_TTL;
		ip->protocol = IPPROTO_ICMP;
		ip->check = 0;
		ip->saddr = src.v4;
		ip->daddr = dst.v4;
		ip->check = csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)ip, 20, 0));
		icmp[0] = 3; /* destination unreachable */
		icmp[1] = 4; /* fragmentation needed and DF set */
		*(__u16 *)(icmp + 2) = 0;
		*(__u16 *)(icmp + 4) = 0;
		*(__u16 *)(icmp + 6) = bpf_htons(mtu > 0xffff ? 0xffff : mtu);
		__builtin_memcpy(icmp + 8, quote, PH_QUOTE4);
		*(__u16 *)(icmp + 2) = csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)icmp, 8 + PH_QUOTE4, 0));
	} else {
		struct ipv6hdr *ip6 = data + ETH_HLEN;
		__u8 *icmp = (void *)(ip6 + 1);
		int i;

		if ((void *)icmp + 8 + PH_QUOTE6 > data_end)
			return PH_DROP;
		eth->h_proto = bpf_htons(ETH_P_IPV6);
		*(__be32 *)ip6 = bpf_htonl(0x60000000);
		ip6->payload_len = bpf_htons(8 + PH_QUOTE6);
		ip6->nexthdr = IPPROTO_ICMPV6;
		ip6->hop_limit = PH_ICMP_REPLY_TTL;
		__builtin_memcpy(&ip6->saddr, src.w, 16);
		__builtin_memcpy(&ip6->daddr, dst.w, 16);
		icmp[0] = 2; /* packet too big */
		icmp[1] = 0;
		*(__u16 *)(icmp + 2) = 0;
		*(__be32 *)(icmp + 4) = bpf_htonl(mtu);
		__builtin_memcpy(icmp + 8, quote, PH_QUOTE6);
		sum = bpf_csum_diff(NULL, 0, (__be32 *)icmp, 8 + PH_QUOTE6, 0);
#pragma unroll
		for (i = 0; i < 4; i++) {
			sum = csum_add(sum, src.w[i]);
			sum = csum_add(sum, dst.w[i]);
		}
		sum = csum_add(sum, bpf_htonl(8 + PH_QUOTE6));
		sum = csum_add(sum, bpf_htonl(IPPROTO_ICMPV6));
		*(__u16 *)(icmp + 2) = csum_fold(sum);
	}
	__builtin_memcpy(eth->h_source, smac, 6);
	__builtin_memcpy(eth->h_dest, dmac, 6);
	stat_inc(PH_STAT_ICMP_TOO_BIG);
	return ctx_tx(ctx);
}

#endif
