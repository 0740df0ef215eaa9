/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Bounded packet parsers. A cursor walks the frame; every parser checks its
 * header against data_end before the first read and returns a negative
 * PARSE_* code on anything it cannot trust. No parser loops without a fixed
 * bound, so the verifier sees every path.
 */
#ifndef PHAROS_PARSING_H
#define PHAROS_PARSING_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include "lib/maps.h"
#include "lib/ctx.h"

/* linux/if_arp.h pulls in glibc under -target bpf (LAB-FACTS): define what we use. */
#define PH_ARPHRD_ETHER 1
#define PH_ARPOP_REQUEST 1
#define PH_ARPOP_REPLY 2

/* IPv6 extension headers walked before giving up (XDP_PASS, counted); IPV6_MAX_EXT_HEADERS in abi.ts. */
#define PH_IPV6_MAX_EXT 4

#define PARSE_OK 0
#define PARSE_PASS -1		/* not ours to judge: let the kernel have it */
#define PARSE_MALFORMED_L2 -2
#define PARSE_MALFORMED_L3 -3
#define PARSE_MALFORMED_L4 -4
#define PARSE_FRAGMENT -5
#define PARSE_EXT_LIMIT -6

struct cursor {
	void *pos;
	void *end;
	/*
	 * 1 when bytes may exist past `end` (tc: an skb's paged data): lengths
	 * in headers are then not checked against `end`, only header reads are.
	 */
	int partial;
};

struct arp_eth {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 op;
	__u8 sha[6];
	__u8 spa[4];
	__u8 tha[6];
	__u8 tpa[4];
} __attribute__((packed));

/* What the entry point needs to know about one IP packet. */
struct packet {
	struct ethhdr *eth;
	void *l3;
	void *l4;
	struct ph_flow flow;	/* 5-tuple as on the wire */
	__u32 l3_len;		/* bytes from l3 to the end of the IP datagram */
	__u8 tcp_flags;		/* TCP byte 13 (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10) */
	__u8 l4_csum_off;	/* offset of the L4 checksum from l4, 0 = none */
	__u8 ttl;		/* IPv4 TTL / IPv6 hop limit as received */
};

#define PH_TCP_FIN 0x01
#define PH_TCP_SYN 0x02
#define PH_TCP_RST 0x04
#define PH_TCP_ACK 0x10

/**
 * parse_eth() - Ethernet header, one optional 802.1Q/802.1ad tag.
 * Returns: the EtherType (network order) or a negative PARSE_* code.
 */
static __always_inline int parse_eth(struct cursor *c, struct ethhdr **eth)
{
	struct ethhdr *h = c->pos;
	__be16 proto;

	if ((void *)(h + 1) > c->end)
		return PARSE_MALFORMED_L2;
	*eth = h;
	c->pos = h + 1;
	proto = h->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		/* VLAN-tagged frames are the kernel's (a VLAN device may own them). */
		return PARSE_PASS;
	}
	return proto;
}

static __always_inline int parse_arp(struct cursor *c, struct arp_eth **arp)
{
	struct arp_eth *a = c->pos;

	if ((void *)(a + 1) > c->end)
		return PARSE_MALFORMED_L2;
	if (a->htype != bpf_htons(PH_ARPHRD_ETHER) || a->ptype != bpf_htons(ETH_P_IP) ||
	    a->hlen != 6 || a->plen != 4)
		return PARSE_PASS;
	*arp = a;
	return PARSE_OK;
}

/**
 * parse_ipv4() - IPv4 header incl. options; fills the addresses and protocol.
 * Fragments are reported (no ports in them to look up).
 */
static __always_inline int parse_ipv4(struct cursor *c, struct packet *p)
{
	struct iphdr *ip = c->pos;
	__u32 ihl_len, tot_len;

	if ((void *)(ip + 1) > c->end)
		return PARSE_MALFORMED_L3;
	if (ip->version != 4 || ip->ihl < 5)
		return PARSE_MALFORMED_L3;
	ihl_len = ip->ihl * 4;
	tot_len = bpf_ntohs(ip->tot_len);
	if (tot_len < ihl_len || (!c->partial && (void *)ip + tot_len > c->end))
		return PARSE_MALFORMED_L3;
	/* ihl <= 15 so this is bounded; the check is for the verifier. */
	if ((void *)ip + ihl_len > c->end)
		return PARSE_MALFORMED_L3;
	p->l3 = ip;
	p->l3_len = tot_len;
	p->flow.family = PH_AF_INET;
	p->flow.proto = ip->protocol;
	p->ttl = ip->ttl;
	p->flow.src.v4 = ip->saddr;
	p->flow.dst.v4 = ip->daddr;
	if (ip->frag_off & bpf_htons(0x3fff)) /* MF or offset */
		return PARSE_FRAGMENT;
	c->pos = (void *)ip + ihl_len;
	return PARSE_OK;
}

struct ipv6_opt_hdr_min {
	__u8 nexthdr;
	__u8 hdrlen;
	__u8 type;		/* routing: routing type; fragment: reserved */
	__u8 segments_left;	/* routing only */
};

struct ipv6_frag_min {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;	/* offset << 3 | M */
	__be32 id;
};

/**
 * parse_ipv6() - IPv6 header and up to PH_IPV6_MAX_EXT extension headers.
 * A routing header with segments left means the destination is not final:
 * not ours. Atomic fragments (offset 0, no M) are walked through.
 */
static __always_inline int parse_ipv6(struct cursor *c, struct packet *p)
{
	struct ipv6hdr *ip6 = c->pos;
	__u8 nexthdr;
	int i;

	if ((void *)(ip6 + 1) > c->end)
		return PARSE_MALFORMED_L3;
	if (ip6->version != 6)
		return PARSE_MALFORMED_L3;
	if (!c->partial && (void *)(ip6 + 1) + bpf_ntohs(ip6->payload_len) > c->end)
		return PARSE_MALFORMED_L3;
	p->l3 = ip6;
	p->l3_len = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
	p->flow.family = PH_AF_INET6;
	__builtin_memcpy(&p->flow.src, &ip6->saddr, 16);
	__builtin_memcpy(&p->flow.dst, &ip6->daddr, 16);
	c->pos = ip6 + 1;
	nexthdr = ip6->nexthdr;
	p->ttl = ip6->hop_limit;

#pragma unroll
	for (i = 0; i < PH_IPV6_MAX_EXT; i++) {
		struct ipv6_opt_hdr_min *h = c->pos;

		switch (nexthdr) {
		case IPPROTO_HOPOPTS:
		case IPPROTO_DSTOPTS:
		case IPPROTO_ROUTING:
			if ((void *)(h + 1) > c->end)
				return PARSE_MALFORMED_L3;
			if (nexthdr == IPPROTO_ROUTING && h->segments_left)
				return PARSE_PASS;
			nexthdr = h->nexthdr;
			c->pos = (void *)h + (h->hdrlen + 1) * 8;
			break;
		case IPPROTO_FRAGMENT: {
			struct ipv6_frag_min *f = c->pos;

			if ((void *)(f + 1) > c->end)
				return PARSE_MALFORMED_L3;
			p->flow.proto = f->nexthdr;
			if (f->frag_off & bpf_htons(0xfff9)) /* offset or M */
				return PARSE_FRAGMENT;
			nexthdr = f->nexthdr;
			c->pos = f + 1;
			break;
		}
		default:
			p->flow.proto = nexthdr;
			return PARSE_OK;
		}
	}
	/* Still an extension header after the bound? Give it to the kernel. */
	switch (nexthdr) {
	case IPPROTO_HOPOPTS:
	case IPPROTO_DSTOPTS:
	case IPPROTO_ROUTING:
	case IPPROTO_FRAGMENT:
		return PARSE_EXT_LIMIT;
	}
	p->flow.proto = nexthdr;
	return PARSE_OK;
}

/**
 * parse_ip() - the IP header after Ethernet, by @ethertype (parse_eth()'s
 * result, network order). Returns: a PARSE_* code; PARSE_PASS when the
 * frame is not IPv4 or IPv6.
 */
static __always_inline int parse_ip(struct cursor *c, struct packet *p, int ethertype)
{
	if (ethertype == bpf_htons(ETH_P_IP))
		return parse_ipv4(c, p);
	if (ethertype == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(c, p);
	return PARSE_PASS;
}

/**
 * parse_l4() - TCP or UDP ports; other protocols leave ports zero.
 * Returns PARSE_MALFORMED_L4 for a header that does not fit in the datagram.
 */
static __always_inline int parse_l4(struct cursor *c, struct packet *p)
{
	void *l3_end = p->l3 + (p->l3_len & 0xffff);

	if (!c->partial && l3_end > c->end)
		return PARSE_MALFORMED_L3;
	p->l4 = c->pos;
	if (p->flow.proto == IPPROTO_TCP) {
		struct tcphdr *th = c->pos;

		if ((void *)(th + 1) > c->end || (void *)(th + 1) > l3_end)
			return PARSE_MALFORMED_L4;
		if (th->doff < 5)
			return PARSE_MALFORMED_L4;
		p->flow.sport = th->source;
		p->flow.dport = th->dest;
		p->tcp_flags = ((__u8 *)th)[13];
		p->l4_csum_off = offsetof(struct tcphdr, check);
	} else if (p->flow.proto == IPPROTO_UDP) {
		struct udphdr *uh = c->pos;

		if ((void *)(uh + 1) > c->end || (void *)(uh + 1) > l3_end)
			return PARSE_MALFORMED_L4;
		/* A UDP length below the header size is never valid (v6 jumbograms are not supported). */
		if (bpf_ntohs(uh->len) < sizeof(*uh) || (void *)uh + bpf_ntohs(uh->len) > l3_end)
			return PARSE_MALFORMED_L4;
		p->flow.sport = uh->source;
		p->flow.dport = uh->dest;
		p->l4_csum_off = offsetof(struct udphdr, check);
	}
	return PARSE_OK;
}

#endif
