/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ICMP/ICMPv6 helpers: the ICMPv6 checksum (pseudo-header + message) the
 * NDP responder needs, and echo replies for service addresses (ph_vips),
 * built in place. Not yet: error translation for NATed flows (frag-needed,
 * packet-too-big, unreachable: rewrite the embedded header through ph_rev /
 * ph_ct).
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
static __always_inline int icmp_echo_reply(struct xdp_md *ctx, struct packet *p)
{
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *icmp = p->l4;
	__u16 old_word, new_word, *check;
	__u8 mac[6];

	if ((void *)(icmp + 8) > data_end || (void *)(p->eth + 1) > data_end)
		return XDP_PASS;
	if (icmp[1] != 0 || icmp[0] != (p->flow.family == PH_AF_INET ? PH_ICMP_ECHO_REQUEST : PH_ICMP6_ECHO_REQUEST))
		return XDP_PASS;
	if (!is_service_address(&p->flow.dst, p->flow.family))
		return XDP_PASS;

	old_word = *(__u16 *)icmp;
	icmp[0] = p->flow.family == PH_AF_INET ? PH_ICMP_ECHO_REPLY : PH_ICMP6_ECHO_REPLY;
	new_word = *(__u16 *)icmp;
	check = (__u16 *)(icmp + 2);
	*check = csum_apply(*check, csum_diff16(0, old_word, new_word));

	if (p->flow.family == PH_AF_INET) {
		struct iphdr *ip = p->l3;

		if ((void *)(ip + 1) > data_end)
			return XDP_PASS;
		old_word = *(__u16 *)&ip->ttl;
		ip->ttl = PH_ICMP_REPLY_TTL;
		ip->check = csum_apply(ip->check, csum_diff16(0, old_word, *(__u16 *)&ip->ttl));
		ip->saddr = p->flow.dst.v4;
		ip->daddr = p->flow.src.v4;
	} else {
		struct ipv6hdr *ip6 = p->l3;

		if ((void *)(ip6 + 1) > data_end)
			return XDP_PASS;
		ip6->hop_limit = PH_ICMP_REPLY_TTL;
		__builtin_memcpy(&ip6->saddr, p->flow.dst.w, 16);
		__builtin_memcpy(&ip6->daddr, p->flow.src.w, 16);
	}
	__builtin_memcpy(mac, p->eth->h_source, 6);
	__builtin_memcpy(p->eth->h_source, p->eth->h_dest, 6);
	__builtin_memcpy(p->eth->h_dest, mac, 6);
	stat_inc(PH_STAT_ICMP_ECHO_REPLY);
	return XDP_TX;
}

#endif
