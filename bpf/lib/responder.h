/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ARP and IPv6 neighbour-solicitation answers for the addresses this node
 * announces (ph_responder, keyed by address + ingress ifindex), built in
 * place and sent back with XDP_TX. Only while the agent's liveness stamp is
 * fresh: a wedged agent falls silent and another node's lease takes over.
 */
#ifndef PHAROS_RESPONDER_H
#define PHAROS_RESPONDER_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "lib/config.h"
#include "lib/maps.h"
#include "lib/parsing.h"
#include "lib/stats.h"
#include "lib/icmp.h"
#include "lib/l2_foreign.h"

#define PH_NDP_NS 135
#define PH_NDP_NA 136
#define PH_NDP_OPT_TLLA 2
/* Ethernet + IPv6 + NA (24) + target link-layer address option (8). */
#define PH_NA_FRAME_LEN (14 + 40 + 32)

static __always_inline int responder_alive(void)
{
	struct ph_liveness *l = liveness_get();
	__u64 now, stamp;

	if (!l)
		return 0;
	stamp = l->stamp_ns;
	if (!stamp)
		return 0;
	now = bpf_ktime_get_ns();
	/* A stamp slightly in the future (taken just after this packet's clock read) is fresh. */
	return now < stamp || now - stamp <= cfg_liveness_max_ns;
}

static __always_inline struct ph_resp_value *responder_find(const void *addr, __u8 family, __u32 ifindex)
{
	struct ph_resp_key k = {};

	responder_key(&k, addr, family, ifindex);
	return bpf_map_lookup_elem(&ph_responder, &k);
}

/**
 * handle_arp() - answer an ARP request for one of our addresses.
 * Returns: XDP_TX with the reply in place, XDP_PASS for everything else
 * (replies, foreign addresses, gratuitous ARP; another MAC's reply or
 * gratuitous ARP for one of ours is noted in ph_l2_foreign first),
 * XDP_DROP for a truncated ARP.
 */
static __always_inline int handle_arp(struct ph_ctx *ctx, struct cursor *c, struct ethhdr *eth)
{
	struct ph_resp_value *v;
	struct arp_eth *arp;
	__u8 ip[4];
	int rc;

	rc = parse_arp(c, &arp);
	if (rc == PARSE_MALFORMED_L2) {
		stat_inc(PH_STAT_MALFORMED_L2);
		return PH_DROP;
	}
	if (rc != PARSE_OK)
		return PH_PASS;
	/* Another MAC answering (reply) or announcing (gratuitous) one of our addresses: split brain, noted. */
	if (arp->op == bpf_htons(PH_ARPOP_REPLY) || !__builtin_memcmp(arp->spa, arp->tpa, 4)) {
		v = responder_find(arp->spa, PH_AF_INET, ctx->ingress_ifindex);
		if (v)
			l2_foreign_note(arp->spa, PH_AF_INET, ctx->ingress_ifindex, v, arp->sha);
	}
	if (arp->op != bpf_htons(PH_ARPOP_REQUEST))
		return PH_PASS;
	v = responder_find(arp->tpa, PH_AF_INET, ctx->ingress_ifindex);
	if (!v)
		return PH_PASS;
	/* Someone else announcing (gratuitous ARP) or claiming our address: the kernel and the agent judge that. */
	if (!__builtin_memcmp(arp->spa, arp->tpa, 4)) {
		stat_inc(PH_STAT_ARP_IGNORED);
		return PH_PASS;
	}
	if (!responder_alive()) {
		stat_inc(PH_STAT_RESPONDER_STALE);
		return PH_PASS;
	}
	__builtin_memcpy(ip, arp->tpa, 4);
	__builtin_memcpy(eth->h_dest, arp->sha, 6);
	__builtin_memcpy(eth->h_source, v->mac, 6);
	arp->op = bpf_htons(PH_ARPOP_REPLY);
	__builtin_memcpy(arp->tha, arp->sha, 6);
	__builtin_memcpy(arp->tpa, arp->spa, 4);
	__builtin_memcpy(arp->sha, v->mac, 6);
	__builtin_memcpy(arp->spa, ip, 4);
	stat_inc(PH_STAT_ARP_REPLY);
	return ctx_tx(ctx);
}

/* The NA we send, as 32-bit words for the checksum. */
struct na_msg {
	__u8 type;
	__u8 code;
	__u16 csum;
	__u32 flags;		/* R|S|O in the top bits */
	__u32 target[4];
	__u8 opt_type;
	__u8 opt_len;		/* in units of 8 bytes */
	__u8 mac[6];
};

/**
 * handle_ns() - answer a neighbour solicitation for one of our addresses
 * with a solicited NA (S and O set) carrying our MAC. The frame is resized to
 * exactly the NA. DAD probes (unspecified source) and solicitations behind
 * extension headers are left to the kernel.
 */
static __always_inline int handle_ns(struct ph_ctx *ctx, struct packet *p)
{
	void *data, *data_end = (void *)(long)ctx->data_end;
	struct ipv6hdr *ip6 = p->l3;
	struct ph_resp_value *v;
	__u8 *icmp;
	struct na_msg na = {};
	__u8 client_mac[6], mac[6];
	__u32 client_ip[4];
	struct ethhdr *eth;
	int len;

	/* No extension headers: the NS directly follows the IPv6 header (derive it from ip6 so the verifier keeps the bounds). */
	if ((void *)(ip6 + 1) > data_end || p->l4 != (void *)(ip6 + 1))
		return PH_PASS;
	icmp = (__u8 *)(ip6 + 1);
	if ((void *)(icmp + 24) > data_end)
		return PH_PASS;
	/* Another MAC advertising one of our addresses (solicited or not): split brain, noted. */
	if (icmp[0] == PH_NDP_NA && icmp[1] == 0 && ip6->hop_limit == 255) {
		v = responder_find(icmp + 8, PH_AF_INET6, ctx->ingress_ifindex);
		if (v)
			l2_foreign_note(icmp + 8, PH_AF_INET6, ctx->ingress_ifindex, v, p->eth->h_source);
		return PH_PASS;
	}
	if (icmp[0] != PH_NDP_NS || icmp[1] != 0 || ip6->hop_limit != 255 || p->l3_len < 40 + 24)
		return PH_PASS;
	if (!(ip6->saddr.in6_u.u6_addr32[0] | ip6->saddr.in6_u.u6_addr32[1] |
	      ip6->saddr.in6_u.u6_addr32[2] | ip6->saddr.in6_u.u6_addr32[3]))
		return PH_PASS;
	v = responder_find(icmp + 8, PH_AF_INET6, ctx->ingress_ifindex);
	if (!v)
		return PH_PASS;
	if (!responder_alive()) {
		stat_inc(PH_STAT_RESPONDER_STALE);
		return PH_PASS;
	}
	__builtin_memcpy(mac, v->mac, 6);
	__builtin_memcpy(client_mac, p->eth->h_source, 6);
	__builtin_memcpy(client_ip, &ip6->saddr, 16);
	__builtin_memcpy(na.target, icmp + 8, 16);
	na.type = PH_NDP_NA;
	na.flags = bpf_htonl(0x60000000); /* solicited, override */
	na.opt_type = PH_NDP_OPT_TLLA;
	na.opt_len = 1;
	__builtin_memcpy(na.mac, mac, 6);
	na.csum = icmp6_csum(na.target, client_ip, (const __u32 *)&na, sizeof(na) / 4);

	data = (void *)(long)ctx->data;
	len = ctx_len(ctx);
	if (len != PH_NA_FRAME_LEN && ctx_resize(ctx, PH_NA_FRAME_LEN))
		return PH_PASS;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + PH_NA_FRAME_LEN > data_end)
		return PH_PASS;
	eth = data;
	ip6 = data + sizeof(*eth);
	__builtin_memcpy(eth->h_dest, client_mac, 6);
	__builtin_memcpy(eth->h_source, mac, 6);
	eth->h_proto = bpf_htons(ETH_P_IPV6);
	*(__be32 *)ip6 = bpf_htonl(0x60000000);
	ip6->payload_len = bpf_htons(sizeof(na));
	ip6->nexthdr = IPPROTO_ICMPV6;
	ip6->hop_limit = 255;
	__builtin_memcpy(&ip6->saddr, na.target, 16);
	__builtin_memcpy(&ip6->daddr, client_ip, 16);
	__builtin_memcpy(ip6 + 1, &na, sizeof(na));
	stat_inc(PH_STAT_NA_REPLY);
	return ctx_tx(ctx);
}

#endif
