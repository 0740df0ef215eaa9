/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Where the load-balancer logic runs: the only compile-time switch of the
 * data path. lb.bpf.c builds it as XDP; lb-tc.bpf.c defines PH_TC_INGRESS
 * and includes lb.bpf.c, so the same source also runs at tc ingress
 * (clsact, direct action) on an skb. Every header writes to this layer:
 * `struct ph_ctx`, the PH_PASS / PH_DROP verdicts, ctx_tx() for "back out
 * of the interface it came in by", ctx_redirect(), ctx_resize(),
 * ctx_encap_room() and ctx_l4_csum_update(). Nothing else in bpf/ tests PH_TC_INGRESS.
 *
 * Why a tc build exists at all: on veth (kind, containerlab, labs) native
 * XDP loses XDP_TX frames and cannot see that a local sender's TCP/UDP
 * checksum is partial; generic XDP and tc both run on the skb. The two were
 * measured against each other (bpf/README.md, "XDP or tc on veth").
 */
#ifndef PHAROS_CTX_H
#define PHAROS_CTX_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifdef PH_TC_INGRESS

#define ph_ctx __sk_buff
#define PH_PASS TC_ACT_OK
#define PH_DROP TC_ACT_SHOT
#define PH_SEC "tc"
/* An skb: bytes may lie past data_end (paged data), and checksum helpers move the packet pointers. */
#define PH_CTX_SKB 1
#define PH_ENTRY_MAIN pharos_tc_ingress
#define PH_ENTRY_NEW_FLOW pharos_tc_new_flow
#define PH_ENTRY_CONTROL pharos_tc_control

/* Returns: the redirect verdict, or PH_DROP when the kernel refused it. */
static __always_inline int ctx_redirect(struct __sk_buff *ctx, __u32 ifindex)
{
	int act = bpf_redirect(ifindex, 0);

	return act == TC_ACT_REDIRECT ? act : TC_ACT_SHOT;
}

/*
 * XDP_TX at tc: the skb leaves by the egress path of the device it arrived
 * on. Always a non-negative constant, as XDP_TX is: callers use "< 0" for
 * "not handled" after the frame was already rewritten.
 */
static __always_inline int ctx_tx(struct __sk_buff *ctx)
{
	return ctx_redirect(ctx, ctx->ingress_ifindex);
}

/* The whole frame, not only its linear part. */
static __always_inline __u32 ctx_len(struct __sk_buff *ctx)
{
	return ctx->len;
}

/* Grow or shrink the frame to @len bytes; packet pointers are invalid afterwards. */
static __always_inline int ctx_resize(struct __sk_buff *ctx, __u32 len)
{
	return bpf_skb_change_tail(ctx, len, 0);
}

/*
 * A GSO skb (a local TCP sender's 64 KiB "super packet" through a veth)
 * is cut to the MTU only when it leaves: its length says nothing about
 * whether the segments fit.
 */
static __always_inline int ctx_is_gso(struct __sk_buff *ctx)
{
	return ctx->gso_size != 0;
}

/*
 * Headers of an skb may sit partly in paged data. Make Ethernet + IP + the
 * first 20 bytes of TCP/UDP linear when they are not (a local TCP sender's
 * skbs already have them in the head, so this costs nothing there).
 */
static __always_inline void ctx_pull_headers(struct __sk_buff *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 need, head = data_end - data;

	if (head >= ctx->len || (void *)(eth + 1) > data_end)
		return;
	need = ETH_HLEN + (eth->h_proto == bpf_htons(ETH_P_IPV6) ? 40 : 20) + 20;
	if (head < need)
		bpf_skb_pull_data(ctx, ctx->len < need ? ctx->len : need);
}

/* ARP, NDP and ICMP are answered in place: make the whole (small) frame linear. */
static __always_inline void ctx_pull_all(struct __sk_buff *ctx)
{
	if ((__u32)(ctx->data_end - ctx->data) < ctx->len)
		bpf_skb_pull_data(ctx, 0);
}

/*
 * Fold an address change (@addr_diff, covered by the pseudo-header) and a
 * port change (@port_diff, inside the L4 header) into the TCP/UDP checksum
 * at @csum_off. The kernel helper knows the skb's checksum state, which a
 * BPF program cannot read: with CHECKSUM_PARTIAL (a veth sender with
 * offload on) the field holds only the pseudo-header sum, so the address
 * change goes in un-complemented and the port change not at all (the
 * device, or skb_checksum_help, sums the L4 bytes later); otherwise the
 * field is a full checksum and both go in. A UDP/IPv4 zero checksum stays
 * zero (BPF_F_MARK_MANGLED_0). The helper invalidates packet pointers.
 */
static __always_inline int ctx_l4_csum_update(struct __sk_buff *ctx, __u32 csum_off, int udp,
					      __u32 addr_diff, __u32 port_diff)
{
	__u64 mangled = udp ? BPF_F_MARK_MANGLED_0 : 0;

	if (bpf_l4_csum_replace(ctx, csum_off, 0, addr_diff, BPF_F_PSEUDO_HDR | mangled))
		return -1;
	return bpf_l4_csum_replace(ctx, csum_off, 0, port_diff, mangled) ? -1 : 0;
}

/*
 * Room for an outer IP header of @len bytes between Ethernet and IP. The
 * ENCAP flags tell the kernel what was added, so a GSO skb's segments
 * shrink to leave room for it (gso_size) and are cut as IPIP/IP6IP6.
 * Packet pointers are invalid afterwards; Ethernet stays at data.
 */
static __always_inline int ctx_encap_room(struct __sk_buff *ctx, __u32 len, int outer_v6)
{
	__u64 flags = outer_v6 ? BPF_F_ADJ_ROOM_ENCAP_L3_IPV6 : BPF_F_ADJ_ROOM_ENCAP_L3_IPV4;

	return bpf_skb_adjust_room(ctx, len, BPF_ADJ_ROOM_MAC, flags);
}

#else /* XDP */

#define ph_ctx xdp_md
#define PH_PASS XDP_PASS
#define PH_DROP XDP_DROP
#define PH_SEC "xdp"
#define PH_CTX_SKB 0
#define PH_ENTRY_MAIN pharos_xdp
#define PH_ENTRY_NEW_FLOW pharos_xdp_new_flow
#define PH_ENTRY_CONTROL pharos_xdp_control

static __always_inline int ctx_redirect(struct xdp_md *ctx, __u32 ifindex)
{
	/* Plain bpf_redirect bulks like a devmap since 5.7; one helper call instead of a devmap miss plus a fallback. */
	int act = bpf_redirect(ifindex, 0);

	return act == XDP_REDIRECT ? act : XDP_DROP;
}

static __always_inline int ctx_tx(struct xdp_md *ctx)
{
	return XDP_TX;
}

static __always_inline __u32 ctx_len(struct xdp_md *ctx)
{
	return ctx->data_end - ctx->data;
}

static __always_inline int ctx_resize(struct xdp_md *ctx, __u32 len)
{
	return bpf_xdp_adjust_tail(ctx, (int)len - (int)(ctx->data_end - ctx->data));
}

static __always_inline int ctx_is_gso(struct xdp_md *ctx)
{
	return 0;
}

static __always_inline void ctx_pull_headers(struct xdp_md *ctx)
{
}

static __always_inline void ctx_pull_all(struct xdp_md *ctx)
{
}

/* XDP: @len more bytes at the front; the caller writes Ethernet + outer IP there. */
static __always_inline int ctx_encap_room(struct xdp_md *ctx, __u32 len, int outer_v6)
{
	return bpf_xdp_adjust_head(ctx, -(int)len);
}

/* Never called in XDP: nat_rewrite() updates the checksum through the packet pointer. */
static __always_inline int ctx_l4_csum_update(struct xdp_md *ctx, __u32 csum_off, int udp,
					      __u32 addr_diff, __u32 port_diff)
{
	return -1;
}

#endif

#endif
