/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The backend side of DSR's encapsulated dispatch: IPIP / IP6IP6 (either
 * outer family, either inner family) addressed to one of this node's
 * addresses whose inner packet goes to a service address this node
 * serves is stripped of its outer header at tc ingress and handed to the
 * local stack, which delivers it to the socket on the VIP (held on lo).
 * Nothing else is touched, so this is no open tunnel: an outer packet to
 * another address, or an inner one to an address that is not a served
 * VIP, goes on to the next tc filter / the kernel as it came.
 * The kernel here has no ipip / ip6_tunnel modules (LAB-FACTS), hence
 * bpf_skb_adjust_room with the DECAP flags (kernel >= 6.3).
 */
#ifndef PHAROS_DECAP_H
#define PHAROS_DECAP_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "lib/handoff.h"

/* UAPI headers here are 6.1's; the flags came with 6.3. */
#ifndef BPF_F_ADJ_ROOM_DECAP_L3_IPV4
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV6 (1ULL << 8)
#endif

#define PH_DC_AF_INET 2
#define PH_DC_AF_INET6 10

/*
 * Counters, mirrored by DECAP_STAT_REASONS in src/datapath/decap.ts (a
 * test compares): "drop:" and "pass:" as in stats.h.
 */
enum ph_dc_stat {
	PH_DC_DECAP = 0,	/* decapsulated, handed to the local stack */
	PH_DC_NOT_NODE = 1,	/* pass: IPIP/IP6IP6 to an address that is not this node's */
	PH_DC_NOT_VIP = 2,	/* pass: inner destination is no service address served here */
	PH_DC_MALFORMED = 3,	/* drop: truncated outer or inner header, inner version not the one announced */
	PH_DC_INNER_PROTO = 4,	/* drop: inner packet to a served VIP that is not TCP, UDP or ICMP */
	PH_DC_NESTED = 5,	/* drop: the inner packet is itself IPIP/IP6IP6 (one level only) */
	PH_DC_FRAGMENT = 6,	/* pass: outer IPv4 fragment (not reassembled here) */
	PH_DC_FAIL = 7,		/* drop: the kernel refused to remove the outer header */
	PH_DC_HANDOFF = 8,	/* TCP with no socket here: sent on to the flow's owner in the previous table (handoff.h) */
	PH_DC_MAX = 9,
};

/* An address and its family: a served VIP (ph_dc_vips) or one of the node's (ph_dc_nodes). 20 bytes. */
struct ph_dc_addr {
	__u8 addr[16];		/* IPv4 in the first 4 bytes */
	__u8 family;		/* PH_DC_AF_INET / PH_DC_AF_INET6 */
	__u8 pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct ph_dc_addr);
	__type(value, __u8);
} ph_dc_vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct ph_dc_addr);
	__type(value, __u8);
} ph_dc_nodes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PH_DC_MAX);
	__type(key, __u32);
	__type(value, __u64);
} ph_dc_stats SEC(".maps");

static __always_inline int dc_count(__u32 reason, int verdict)
{
	__u64 *c = bpf_map_lookup_elem(&ph_dc_stats, &reason);

	if (c)
		*c += 1;
	return verdict;
}

static __always_inline int dc_known(void *map, const void *addr, __u32 len, __u8 family)
{
	struct ph_dc_addr k = {};

	__builtin_memcpy(k.addr, addr, len == 4 ? 4 : 16);
	k.family = family;
	return bpf_map_lookup_elem(map, &k) != NULL;
}

/**
 * handoff() - the Beamer step for an inner TCP packet to a served VIP
 * (handoff.h): not a SYN, not already handed off, no connection here, and a
 * previous owner that is another host → the outer destination becomes that
 * host, the packet is marked and sent there (bpf_redirect_neigh).
 * Returns: the tc verdict once sent, -1 to go on decapsulating here.
 */
static __always_inline int handoff(struct __sk_buff *skb, void *data, void *data_end, __u8 outer_family,
				   __u32 outer_len, int inner_v4)
{
	struct ph_dc_owner o;
	struct ph_flow f = {};
	struct tcphdr *th;
	__u32 inner_len, ifindex;

	if (inner_v4) {
		struct iphdr *in = data + ETH_HLEN + (outer_len & 0x3f);

		if ((void *)(in + 1) > data_end)
			return -1;
		inner_len = in->ihl * 4;
		f.family = PH_AF_INET;
		f.src.v4 = in->saddr;
		f.dst.v4 = in->daddr;
		th = (void *)in + (inner_len & 0x3c);
	} else {
		struct ipv6hdr *in = data + ETH_HLEN + (outer_len & 0x3f);

		if ((void *)(in + 1) > data_end)
			return -1;
		f.family = PH_AF_INET6;
		__builtin_memcpy(f.src.w, &in->saddr, 16);
		__builtin_memcpy(f.dst.w, &in->daddr, 16);
		th = (void *)(in + 1);
	}
	if ((void *)(th + 1) > data_end || th->syn)
		return -1;
	f.sport = th->source;
	f.dport = th->dest;
	f.proto = IPPROTO_TCP;
	if (outer_family == PH_DC_AF_INET) {
		struct iphdr *ip = data + ETH_HLEN;

		if ((void *)(ip + 1) > data_end || ip->id == bpf_htons(PH_HANDOFF_ID4))
			return -1;
	} else {
		struct ipv6hdr *ip6 = data + ETH_HLEN;

		if ((void *)(ip6 + 1) > data_end || (*(__be32 *)ip6 & bpf_htonl(PH_HANDOFF_LABEL6)))
			return -1;
	}
	if (handoff_has_socket(skb, &f) || handoff_owner(&f, &o) || o.family != outer_family)
		return -1;
	/* The previous owner is this host: deliver here (the connection is gone; the stack answers). */
	if (o.family == PH_DC_AF_INET ? dc_known(&ph_dc_nodes, o.addr, 4, PH_DC_AF_INET) : dc_known(&ph_dc_nodes, o.addr, 16, PH_DC_AF_INET6))
		return -1;
	/* The socket lookup may have moved the packet: find the outer header again. */
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	ifindex = skb->ingress_ifindex ? skb->ingress_ifindex : skb->ifindex;
	if (outer_family == PH_DC_AF_INET) {
		struct iphdr *ip = data + ETH_HLEN;
		__be32 daddr;

		if ((void *)(ip + 1) > data_end)
			return -1;
		__builtin_memcpy(&daddr, o.addr, 4);
		ip->check = csum_apply(ip->check, csum_diff32(csum_diff16(0, ip->id, bpf_htons(PH_HANDOFF_ID4)), ip->daddr, daddr));
		ip->id = bpf_htons(PH_HANDOFF_ID4);
		ip->daddr = daddr;
	} else {
		struct ipv6hdr *ip6 = data + ETH_HLEN;

		if ((void *)(ip6 + 1) > data_end)
			return -1;
		*(__be32 *)ip6 |= bpf_htonl(PH_HANDOFF_LABEL6);
		__builtin_memcpy(&ip6->daddr, o.addr, 16);
	}
	/*
	 * Out by the interface it came in by, the kernel choosing the next hop
	 * (bpf_redirect_neigh's own route lookup needs no forwarding enabled,
	 * which bpf_fib_lookup would): the previous owner must be reachable there.
	 */
	return bpf_redirect_neigh(ifindex, NULL, 0, 0);
}

/* Ethernet + outer IPv6 + inner IPv6 + 8 bytes of L4: what the checks read. */
#define PH_DC_PULL (ETH_HLEN + 40 + 40 + 8)

/* Returned for "not ours": the next tc filter (the LB program, on a node that is both) decides. */
#define PH_DC_NEXT TC_ACT_UNSPEC

/**
 * decap() - the whole decision for one frame at tc ingress.
 * Returns: TC_ACT_OK once decapsulated, PH_DC_NEXT for what is not ours,
 * TC_ACT_SHOT for hostile or broken input addressed to us; each counted.
 */
static __always_inline int decap(struct __sk_buff *skb)
{
	void *data, *data_end;
	struct ethhdr *eth;
	__u32 outer_len, inner_off;
	__u8 inner_proto_outer, outer_family;
	__u8 *inner;
	__u8 l4, icmp;
	__u64 flags;
	int served;

	if (skb->data_end - skb->data < PH_DC_PULL)
		bpf_skb_pull_data(skb, skb->len < PH_DC_PULL ? skb->len : PH_DC_PULL);
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return PH_DC_NEXT;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end || ip->version != 4 || ip->ihl < 5)
			return PH_DC_NEXT;
		if (ip->protocol != IPPROTO_IPIP && ip->protocol != IPPROTO_IPV6)
			return PH_DC_NEXT;
		if (!dc_known(&ph_dc_nodes, &ip->daddr, 4, PH_DC_AF_INET))
			return dc_count(PH_DC_NOT_NODE, PH_DC_NEXT);
		if (ip->frag_off & bpf_htons(0x3fff))
			return dc_count(PH_DC_FRAGMENT, PH_DC_NEXT);
		outer_len = ip->ihl * 4;
		inner_proto_outer = ip->protocol;
		outer_family = PH_DC_AF_INET;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end || ip6->version != 6)
			return PH_DC_NEXT;
		if (ip6->nexthdr != IPPROTO_IPIP && ip6->nexthdr != IPPROTO_IPV6)
			return PH_DC_NEXT;
		if (!dc_known(&ph_dc_nodes, &ip6->daddr, 16, PH_DC_AF_INET6))
			return dc_count(PH_DC_NOT_NODE, PH_DC_NEXT);
		outer_len = 40;
		inner_proto_outer = ip6->nexthdr;
		outer_family = PH_DC_AF_INET6;
	} else {
		return PH_DC_NEXT;
	}
	/* ihl <= 15: bounded, and checked again for the verifier. */
	if (outer_len > 60)
		return dc_count(PH_DC_MALFORMED, TC_ACT_SHOT);
	inner_off = ETH_HLEN + outer_len;
	inner = data + inner_off;
	if (inner_proto_outer == IPPROTO_IPIP) {
		struct iphdr *in = (void *)inner;

		if ((void *)(in + 1) > data_end || in->version != 4 || in->ihl < 5)
			return dc_count(PH_DC_MALFORMED, TC_ACT_SHOT);
		served = dc_known(&ph_dc_vips, &in->daddr, 4, PH_DC_AF_INET);
		l4 = in->protocol;
		icmp = IPPROTO_ICMP;
		flags = BPF_F_ADJ_ROOM_DECAP_L3_IPV4;
	} else {
		struct ipv6hdr *in = (void *)inner;

		if ((void *)(in + 1) > data_end || in->version != 6)
			return dc_count(PH_DC_MALFORMED, TC_ACT_SHOT);
		served = dc_known(&ph_dc_vips, &in->daddr, 16, PH_DC_AF_INET6);
		l4 = in->nexthdr;
		icmp = IPPROTO_ICMPV6;
		flags = BPF_F_ADJ_ROOM_DECAP_L3_IPV6;
	}
	if (!served)
		return dc_count(PH_DC_NOT_VIP, PH_DC_NEXT);
	if (l4 == IPPROTO_IPIP || l4 == IPPROTO_IPV6)
		return dc_count(PH_DC_NESTED, TC_ACT_SHOT);
	if (l4 != IPPROTO_TCP && l4 != IPPROTO_UDP && l4 != icmp)
		return dc_count(PH_DC_INNER_PROTO, TC_ACT_SHOT);
	if (l4 == IPPROTO_TCP) {
		int rc = handoff(skb, data, data_end, outer_family, outer_len, inner_proto_outer == IPPROTO_IPIP);

		if (rc >= 0)
			return dc_count(PH_DC_HANDOFF, rc);
	}
	if (bpf_skb_adjust_room(skb, -(__s32)outer_len, BPF_ADJ_ROOM_MAC, flags))
		return dc_count(PH_DC_FAIL, TC_ACT_SHOT);
	/* The inner family may differ from the outer one (IPv4 in IPv6): Ethernet says which follows now. */
	if ((inner_proto_outer == IPPROTO_IPIP) != (outer_family == PH_DC_AF_INET)) {
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
		eth = data;
		if ((void *)(eth + 1) > data_end)
			return dc_count(PH_DC_FAIL, TC_ACT_SHOT);
		eth->h_proto = bpf_htons(inner_proto_outer == IPPROTO_IPIP ? ETH_P_IP : ETH_P_IPV6);
	}
	return dc_count(PH_DC_DECAP, TC_ACT_OK);
}

#endif
