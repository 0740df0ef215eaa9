/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Address/port rewriting with incremental checksums (direct packet access;
 * at tc the L4 checksum through the kernel helper, see ctx.h), and SNAT
 * port allocation with its reverse entry.
 */
#ifndef PHAROS_NAT_H
#define PHAROS_NAT_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "lib/config.h"
#include "lib/maps.h"
#include "lib/csum.h"
#include "lib/parsing.h"
#include "lib/conntrack.h"

/* SNAT ports tried (from a hash-chosen start) before giving up on a flow. */
#define PH_SNAT_TRIES 8

/**
 * nat_rewrite() - rewrite the packet's 5-tuple to @out, fixing the IPv4
 * header checksum and the TCP/UDP checksum (pseudo-header and ports).
 * A UDP/IPv4 zero checksum ("none") stays zero.
 * Returns: 0, or -1 if the L4 header is not where parsing left it.
 */
/*
 * tc build: fold the changes into the L4 checksum through the kernel
 * helper (it knows whether the checksum is partial), then point @p at the
 * packet again (the helper invalidated every packet pointer). What follows
 * a rewrite needs only Ethernet and IP, and IP always follows an untagged
 * Ethernet header here (tagged frames are passed): constant offsets keep
 * the verifier's walk as short as in the XDP build. L4 is not re-derived.
 */
static __always_inline int nat_csum_skb(struct ph_ctx *ctx, struct packet *p, __u32 addr_diff, __u32 port_diff)
{
	void *data = (void *)(long)ctx->data, *data_end;
	/* The mask bounds the offset for the verifier (IPv6 walks at most 4 extension headers). */
	__u32 l4_off = (__u32)(p->l4 - data) & 0x3fff;

	if (ctx_l4_csum_update(ctx, l4_off + p->l4_csum_off, p->flow.proto == IPPROTO_UDP, addr_diff, port_diff))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + ETH_HLEN > data_end)
		return -1;
	p->eth = data;
	p->l3 = data + ETH_HLEN;
	p->l4 = NULL;
	return 0;
}

static __always_inline int nat_rewrite(struct ph_ctx *ctx, struct packet *p, const struct ph_flow *out)
{
	void *data_end = (void *)(long)ctx->data_end;
	__u32 addr_diff = 0, port_diff;

	addr_diff = csum_diff_addr(addr_diff, &p->flow.src, &out->src, p->flow.family);
	addr_diff = csum_diff_addr(addr_diff, &p->flow.dst, &out->dst, p->flow.family);

	if (p->flow.family == PH_AF_INET) {
		struct iphdr *ip = p->l3;

		if ((void *)(ip + 1) > data_end)
			return -1;
		ip->saddr = out->src.v4;
		ip->daddr = out->dst.v4;
		ip->check = csum_apply(ip->check, addr_diff);
	} else {
		struct ipv6hdr *ip6 = p->l3;

		if ((void *)(ip6 + 1) > data_end)
			return -1;
		__builtin_memcpy(&ip6->saddr, out->src.w, 16);
		__builtin_memcpy(&ip6->daddr, out->dst.w, 16);
	}

	port_diff = csum_diff16(0, p->flow.sport, out->sport);
	port_diff = csum_diff16(port_diff, p->flow.dport, out->dport);
	if (p->flow.proto == IPPROTO_TCP) {
		struct tcphdr *th = p->l4;

		if ((void *)(th + 1) > data_end)
			return -1;
		th->source = out->sport;
		th->dest = out->dport;
		if (!PH_CTX_SKB)
			th->check = csum_apply(th->check, csum_add(addr_diff, port_diff));
	} else {
		struct udphdr *uh = p->l4;

		if ((void *)(uh + 1) > data_end)
			return -1;
		uh->source = out->sport;
		uh->dest = out->dport;
		if (!PH_CTX_SKB && (uh->check || p->flow.family == PH_AF_INET6)) {
			__u16 c = csum_apply(uh->check, csum_add(addr_diff, port_diff));

			/* 0 means "no checksum" in UDP: send the equivalent 0xffff. */
			uh->check = c ? c : 0xffff;
		}
	}
	if (PH_CTX_SKB)
		return nat_csum_skb(ctx, p, addr_diff, port_diff);
	return 0;
}

/**
 * nat_reply_from_vip_skb() - tc egress: make the direct reply @p (a backend
 * answering the client itself) come from @rv's VIP and port, checksums
 * through the skb helpers (a locally built skb may carry a partial one).
 * Returns: 0, or -1 when a helper refused.
 */
static __always_inline int nat_reply_from_vip_skb(struct __sk_buff *skb, const struct packet *p, const struct ph_rev *rv)
{
	void *data = (void *)(long)skb->data;
	__u32 l3_off = p->l3 - data, l4_off = p->l4 - data;
	__u32 csum_off = l4_off + p->l4_csum_off;
	__u64 mangled = p->flow.proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	__be16 sport = rv->new_sport;

	if (p->flow.family == PH_AF_INET) {
		__be32 from = p->flow.src.v4, to = rv->new_src.v4;

		if (bpf_l4_csum_replace(skb, csum_off, from, to, BPF_F_PSEUDO_HDR | mangled | 4) ||
		    bpf_l3_csum_replace(skb, l3_off + offsetof(struct iphdr, check), from, to, 4) ||
		    bpf_skb_store_bytes(skb, l3_off + offsetof(struct iphdr, saddr), &to, 4, 0))
			return -1;
	} else {
		union ph_addr from = p->flow.src, to = rv->new_src;
		__u32 diff = bpf_csum_diff(from.w, 16, to.w, 16, 0);

		if (bpf_l4_csum_replace(skb, csum_off, 0, diff, BPF_F_PSEUDO_HDR | mangled) ||
		    bpf_skb_store_bytes(skb, l3_off + offsetof(struct ipv6hdr, saddr), to.w, 16, 0))
			return -1;
	}
	if (bpf_l4_csum_replace(skb, csum_off, p->flow.sport, sport, mangled | 2) ||
	    bpf_skb_store_bytes(skb, l4_off, &sport, 2, 0))
		return -1;
	return 0;
}

static __always_inline int rev_expired(const struct ph_rev *r, __u8 proto, __u64 now)
{
	__u64 timeout = proto == IPPROTO_TCP ? cfg_tcp_est_ns : cfg_udp_ns;

	return now - r->last_seen > timeout;
}

/*
 * A reverse entry is stale when the client flow it was made for no longer
 * holds that SNAT port: its conntrack entry was evicted by the LRU, expired,
 * or moved to another port. The port is then free to take.
 */
static __always_inline int rev_orphaned(const struct ph_rev *r, const struct ph_flow *rk, __u64 now)
{
	struct ph_flow fk;
	struct ph_ct *ct;

	rev_client_flow(&fk, r, rk->proto, rk->family);
	ct = bpf_map_lookup_elem(&ph_ct, &fk);
	return !ct || ct->snat_port != rk->dport || ct_expired(ct, rk->proto, now);
}

/**
 * snat_alloc() - choose a node port for @out (src already the node address)
 * and insert the reverse entry @rv (key built in @rkp, zeroed scratch
 * memory) for it with BPF_NOEXIST, trying
 * PH_SNAT_TRIES ports from a start and a stride chosen by @hash. A port whose reverse
 * entry has gone idle or lost its client flow, or that already belongs to
 * this very client flow, is taken over.
 * Returns: 0 with out->sport set, or -1 when every try collided.
 */
static __always_inline int snat_alloc(const struct ph_runtime *rt, struct ph_flow *out,
				      struct ph_rev *rv, struct ph_flow *rkp, __u32 hash, __u64 now)
{
	__u32 lo = rt->port_min, hi = rt->port_max, range, stride, i;
	struct ph_flow *rk = rkp;

	if (!lo || hi < lo)
		return -1;
	range = hi - lo + 1;
	/*
	 * Double hashing: a second, flow-dependent stride instead of +1.
	 * Probing consecutive ports clusters the taken ones, so at 25% fill
	 * 0.64 tries per flow collided and 2% of new flows ran out of tries
	 * (bench/README.md); with a stride the tries are independent.
	 */
	stride = range > 1 ? 1 + (hash >> 16) % (range - 1) : 1;
	flow_reverse(rk, out); /* dport: the SNAT port tried */

	for (i = 0; i < PH_SNAT_TRIES; i++) {
		__u16 port = lo + (hash + i * stride) % range;
		struct ph_rev *old;

		rk->dport = bpf_htons(port);
		/* Common case first: the port is free (one bucket walk, no lookup before). */
		if (!bpf_map_update_elem(&ph_rev, rk, rv, BPF_NOEXIST))
			goto found;
		old = bpf_map_lookup_elem(&ph_rev, rk);
		if (!old)
			continue;
		if (rev_expired(old, out->proto, now) || rev_orphaned(old, rk, now) ||
		    (old->new_dport == rv->new_dport && old->new_dst.w[0] == rv->new_dst.w[0] &&
		     old->new_dst.w[1] == rv->new_dst.w[1] && old->new_dst.w[2] == rv->new_dst.w[2] &&
		     old->new_dst.w[3] == rv->new_dst.w[3] && old->new_sport == rv->new_sport)) {
			if (!bpf_map_update_elem(&ph_rev, rk, rv, BPF_ANY))
				goto found;
		}
	}
	return -1;
found:
	out->sport = rk->dport;
	return 0;
}

#endif
