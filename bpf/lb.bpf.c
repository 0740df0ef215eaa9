// SPDX-License-Identifier: GPL-2.0
/*
 * pharos data path: XDP L4 load balancer with an ARP/NDP responder, and the
 * tc egress program that reverse-NATs replies of backends on this node.
 *
 * XDP, per packet:
 *   parse -> ARP / NS for an announced address: answer (XDP_TX)
 *         -> {VIP, port, proto} frontend?  no: reply to one of our SNAT
 *            ports? (reverse NAT back to VIP -> client) else XDP_PASS untouched
 *         -> DSR frontend: Maglev pick, MAC rewrite or IPIP/IP6IP6, send (lib/dsr.h)
 *         -> conntrack hit: same backend, cached next hop
 *         -> else Maglev pick, conntrack + reverse NAT entries, DNAT (+SNAT)
 *         -> bpf_fib_lookup: XDP_TX / redirect; no neighbour yet: XDP_PASS
 *            the rewritten packet so the kernel resolves and forwards it;
 *            backend on this node: XDP_PASS after DNAT.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lib/ctx.h"
#include "lib/config.h"
#include "lib/maps.h"
#include "lib/stats.h"
#include "lib/parsing.h"
#include "lib/csum.h"
#include "lib/maglev.h"
#include "lib/conntrack.h"
#include "lib/nat.h"
#include "lib/fib.h"
#include "lib/icmp.h"
#include "lib/icmp_nat.h"
#include "lib/responder.h"
#include "lib/source_range.h"
#include "lib/affinity.h"
#include "lib/dsr.h"

/*
 * Unicast to another MAC than the ingress interface's: what the kernel would
 * drop as PACKET_OTHERHOST. Interfaces the loader did not record (test runs)
 * are not judged.
 */
static __always_inline int for_this_host(struct ph_ctx *ctx, const struct ethhdr *eth)
{
	__u32 ifindex = ctx->ingress_ifindex;
	struct ph_if_mac *m = bpf_map_lookup_elem(&ph_if_macs, &ifindex);

	if (!m || (eth->h_dest[0] & 1))
		return 1;
	for (int i = 0; i < 6; i++)
		if (eth->h_dest[i] != m->mac[i])
			return 0;
	return 1;
}

/* Reply from a backend to one of our SNAT ports: back to VIP -> client. */
static __always_inline int lb_reverse(struct ph_ctx *ctx, struct packet *p)
{
	struct ph_nexthop nh;
	enum fib_verdict v = FIB_FORWARD;
	struct ph_flow out = {};
	struct ph_rev *rv;
	__u64 now;
	int rc;

	if (cfg_snat) {
		struct ph_runtime *rt = runtime_get();
		__u16 port = bpf_ntohs(p->flow.dport);
		const union ph_addr *node;

		if (!rt)
			return PH_PASS;
		/* Replies come back by the interface the request left by: its SNAT address. */
		node = snat_source(rt, ctx->ingress_ifindex, p->flow.family);
		if (p->flow.dst.w[0] != node->w[0] || p->flow.dst.w[1] != node->w[1] ||
		    p->flow.dst.w[2] != node->w[2] || p->flow.dst.w[3] != node->w[3] ||
		    port < rt->port_min || port > rt->port_max)
			return PH_PASS;
	}
	rv = bpf_map_lookup_elem(&ph_rev, &p->flow);
	if (!rv || (rv->flags & PH_CTF_LOCAL))
		return PH_PASS;
	if (p->ttl <= 1)
		return count_and(PH_STAT_TTL_EXCEEDED, PH_PASS);
	now = bpf_ktime_get_coarse_ns();
	if (now - rv->last_seen > PH_CT_TOUCH_NS)
		rv->last_seen = now;

	out.src = rv->new_src;
	out.dst = rv->new_dst;
	out.sport = rv->new_sport;
	out.dport = rv->new_dport;
	out.proto = p->flow.proto;
	out.family = p->flow.family;

	/* The backend closing: mark the client flow so it times out quickly. */
	if (p->tcp_flags & (PH_TCP_FIN | PH_TCP_RST)) {
		struct ph_flow fk;
		struct ph_ct *ct;

		rev_client_flow(&fk, rv, out.proto, out.family);
		ct = bpf_map_lookup_elem(&ph_ct, &fk);
		if (ct)
			ct->state = PH_CT_CLOSING;
	}

	if (nh_stale(&rv->nh, rv->fib_at, now)) {
		v = fib_resolve(ctx, &out, p->l3_len, &nh);
		if (v == FIB_FORWARD) {
			rv->nh = nh;
			rv->fib_at = now;
		} else if (v != FIB_NO_NEIGH) {
			return count_and(PH_STAT_FIB_FAIL, PH_DROP);
		}
	} else {
		nh = rv->nh;
	}
	if (v == FIB_FORWARD) {
		__u32 mtu = egress_mtu_exceeded(ctx, p, nh.ifindex);

		if (mtu && (rc = icmp_too_big(ctx, p, mtu)) >= 0)
			return rc;
	}
	if (nat_rewrite(ctx, p, &out))
		return count_and(PH_STAT_MALFORMED_L4, PH_DROP);
	stat_inc(PH_STAT_REV_NAT);
	return nh_forward(ctx, p, v, &nh);
}

/* Packet of a known flow. */
static __always_inline int lb_established(struct ph_ctx *ctx, struct packet *p, struct ph_ct *ct,
					  const struct ph_backend *be, __u64 now)
{
	struct ph_nexthop nh;
	enum fib_verdict v;
	struct ph_flow out = p->flow;

	ct_touch(ct, p, now);
	out.dst = be->addr;
	out.dport = be->port;
	if (ct->flags & PH_CTF_SNAT) {
		out.src = ct->snat_addr;
		out.sport = ct->snat_port;
	}
	traffic_add(&ph_fe_stats, ct->frontend_id, p->l3_len);
	traffic_add(&ph_be_stats, ct->backend_id, p->l3_len);
	if (ct->flags & PH_CTF_LOCAL) {
		if (nat_rewrite(ctx, p, &out))
			return count_and(PH_STAT_MALFORMED_L4, PH_DROP);
		return count_and(PH_STAT_LOCAL_BACKEND, PH_PASS);
	}
	v = backend_nexthop(ctx, ct->backend_id, &out, p->l3_len, now, &nh);
	if (v != FIB_FORWARD && v != FIB_NO_NEIGH)
		return count_and(PH_STAT_FIB_FAIL, PH_DROP);
	if (v == FIB_FORWARD) {
		__u32 mtu = egress_mtu_exceeded(ctx, p, nh.ifindex);
		int rc;

		if (mtu && (rc = icmp_too_big(ctx, p, mtu)) >= 0)
			return rc;
	}
	if (nat_rewrite(ctx, p, &out))
		return count_and(PH_STAT_MALFORMED_L4, PH_DROP);
	return nh_forward(ctx, p, v, &nh);
}

/* Reverse entry for a flow that is not SNATed: the reply comes from the backend to the client. */
static __always_inline int rev_insert_direct(const struct ph_flow *out, struct ph_scratch *s)
{
	flow_reverse(&s->rk, out);
	return bpf_map_update_elem(&ph_rev, &s->rk, &s->rv, BPF_ANY);
}

/* First packet of a flow (or of one whose backend went away): pick, record, rewrite, send. */
static __always_inline int lb_new_flow(struct ph_ctx *ctx, struct packet *p, const struct ph_fe_value *fe,
				       __u64 now)
{
	struct ph_flow out = p->flow;
	struct ph_scratch *s;
	struct ph_nexthop nh;
	struct ph_backend *be;
	enum fib_verdict v;
	__u32 hash, be_id, zero = 0;
	int snat;

	if (!fe->backends)
		return count_and(PH_STAT_NO_BACKEND, PH_DROP);
	s = bpf_map_lookup_elem(&ph_scratch, &zero);
	if (!s)
		return count_and(PH_STAT_CT_INSERT_FAIL, PH_DROP);
	__builtin_memset(s, 0, sizeof(*s));
	hash = flow_hash(&p->flow);
	be_id = 0;
	if (fe->flags & PH_FE_AFFINITY) {
		affinity_key(s, fe->id, &p->flow);
		be_id = affinity_backend(s, fe->affinity_timeout, now);
		if (be_id)
			stat_inc(PH_STAT_AFFINITY_HIT);
	}
	if (!be_id)
		be_id = maglev_pick(fe, hash);
	be = be_id ? backend_get(be_id) : NULL;
	if (!be)
		return count_and(PH_STAT_NO_BACKEND, PH_DROP);

	out.dst = be->addr;
	out.dport = be->port;
	snat = cfg_snat && !(fe->flags & PH_FE_LOCAL_ONLY);
	if (snat) {
		struct ph_runtime *rt = runtime_get();

		if (!rt)
			return count_and(PH_STAT_SNAT_EXHAUSTED, PH_DROP);
		out.src = p->flow.family == PH_AF_INET ? rt->snat_v4 : rt->snat_v6;
		if (!(out.src.w[0] | out.src.w[1] | out.src.w[2] | out.src.w[3]))
			return count_and(PH_STAT_SNAT_EXHAUSTED, PH_DROP);
	}

	s->ct.last_seen = now;
	s->ct.backend_id = be_id;
	s->ct.frontend_id = fe->id;
	s->ct.state = ct_initial_state(p);

	s->rv.last_seen = now;
	s->rv.new_src = p->flow.dst;
	s->rv.new_dst = p->flow.src;
	s->rv.new_sport = p->flow.dport;
	s->rv.new_dport = p->flow.sport;
	s->rv.frontend_id = fe->id;
	s->rv.backend_id = be_id;

	v = backend_nexthop(ctx, be_id, &out, p->l3_len, now, &nh);
	/* "Not forwarded" is also what the FIB says with no route: local only for the node's own addresses. */
	if (v == FIB_LOCAL && !(be->flags & PH_BE_LOCAL))
		v = FIB_UNREACHABLE;
	if (v == FIB_UNREACHABLE)
		return count_and(PH_STAT_FIB_FAIL, PH_DROP);
	if (v == FIB_LOCAL) {
		/* Backend on this node: no SNAT; the kernel delivers, tc egress reverses the reply. */
		out.src = p->flow.src;
		out.sport = p->flow.sport;
		s->ct.flags = PH_CTF_LOCAL;
		s->rv.flags = PH_CTF_LOCAL;
		if (rev_insert_direct(&out, s))
			return count_and(PH_STAT_CT_INSERT_FAIL, PH_DROP);
	} else if (snat) {
		struct ph_runtime *rt = runtime_get();

		if (!rt)
			return count_and(PH_STAT_SNAT_EXHAUSTED, PH_DROP);
		/* The address of the interface the packet leaves by, as MASQUERADE does. */
		out.src = *snat_source(rt, nh.ifindex, p->flow.family);
		if (snat_alloc(rt, &out, &s->rv, &s->rk, hash, now))
			return count_and(PH_STAT_SNAT_EXHAUSTED, PH_DROP);
		s->ct.flags = PH_CTF_SNAT;
		s->ct.snat_addr = out.src;
		s->ct.snat_port = out.sport;
	} else if (rev_insert_direct(&out, s)) {
		/* DNAT only: replies come back through us from the backend to the client. */
		return count_and(PH_STAT_CT_INSERT_FAIL, PH_DROP);
	}
	if (bpf_map_update_elem(&ph_ct, &p->flow, &s->ct, BPF_ANY))
		return count_and(PH_STAT_CT_INSERT_FAIL, PH_DROP);
	stat_inc(PH_STAT_CT_CREATE);
	if (fe->flags & PH_FE_AFFINITY)
		affinity_remember(s, be_id, now);
	traffic_add(&ph_fe_stats, fe->id, p->l3_len);
	traffic_add(&ph_be_stats, be_id, p->l3_len);
	if (nat_rewrite(ctx, p, &out))
		return count_and(PH_STAT_MALFORMED_L4, PH_DROP);
	if (v == FIB_LOCAL)
		return count_and(PH_STAT_LOCAL_BACKEND, PH_PASS);
	return nh_forward(ctx, p, v, &nh);
}

static __always_inline int lb_process(struct ph_ctx *ctx, struct packet *p)
{
	struct ph_fe_value *fe;
	struct ph_backend *be;
	struct ph_ct *ct;
	__u64 now;

	fe = frontend_get(&p->flow);
	if (!fe)
		return lb_reverse(ctx, p);

	if ((fe->flags & PH_FE_SOURCE_RANGES) && !source_allowed(fe->id, &p->flow.src))
		return count_and(PH_STAT_SOURCE_RANGE, PH_DROP);
	/*
	 * DSR: no flow state, so every packet is judged like a first one; an
	 * L2 hop, so the TTL is left alone (only the MACs change).
	 */
	if (fe->flags & PH_FE_DSR) {
		if (!for_this_host(ctx, p->eth))
			return count_and(PH_STAT_FOREIGN_MAC, PH_PASS);
		return dsr_dispatch(ctx, p, fe);
	}
	/* Would expire on the next hop: untouched to the kernel, which answers with time exceeded. */
	if (p->ttl <= 1)
		return count_and(PH_STAT_TTL_EXCEEDED, PH_PASS);
	now = bpf_ktime_get_coarse_ns();
	ct = bpf_map_lookup_elem(&ph_ct, &p->flow);
	if (ct && !ct_expired(ct, p->flow.proto, now) && !ct_is_reopen(ct, p)) {
		be = backend_get(ct->backend_id);
		if (be) {
			stat_inc(PH_STAT_CT_HIT);
			return lb_established(ctx, p, ct, be, now);
		}
		if (fe->flags & PH_FE_RESET_ON_REMOVE)
			return count_and(PH_STAT_BACKEND_GONE, PH_DROP);
		stat_inc(PH_STAT_BACKEND_REBALANCED);
	}
	bpf_tail_call(ctx, &ph_progs, PH_PROG_NEW_FLOW);
	return count_and(PH_STAT_TAIL_CALL_FAIL, PH_PASS);
}

/* What parse_frame() found: a final verdict (>= 0) or one of these. */
#define PH_FRAME_LB	-1	/* TCP/UDP over IPv4/IPv6, parsed through L4 */
#define PH_FRAME_ARP	-2
#define PH_FRAME_ICMP	-3	/* ICMP or ICMPv6; p->l4 points at its first byte */

/**
 * parse_frame() - parse @ctx into @p, counting and judging what is not
 * ours (malformed: XDP_DROP; fragments, other protocols: XDP_PASS).
 * Every program of the object starts here, so each sees the same packet.
 */
static __always_inline int parse_frame(struct ph_ctx *ctx, struct cursor *c, struct packet *p)
{
	int rc;

	c->pos = (void *)(long)ctx->data;
	c->end = (void *)(long)ctx->data_end;
	c->partial = PH_CTX_SKB;
	rc = parse_eth(c, &p->eth);
	if (rc == PARSE_MALFORMED_L2)
		return count_and(PH_STAT_MALFORMED_L2, PH_DROP);
	if (rc < 0)
		return PH_PASS;
	if (rc == bpf_htons(ETH_P_ARP))
		return PH_FRAME_ARP;
	rc = parse_ip(c, p, rc);
	switch (rc) {
	case PARSE_OK:
		break;
	case PARSE_MALFORMED_L3:
		return count_and(PH_STAT_MALFORMED_L3, PH_DROP);
	case PARSE_FRAGMENT:
		return count_and(PH_STAT_FRAGMENT, PH_PASS);
	case PARSE_EXT_LIMIT:
		return count_and(PH_STAT_IPV6_EXT_LIMIT, PH_PASS);
	default:
		return PH_PASS;
	}

	if (p->flow.proto == IPPROTO_ICMPV6 || p->flow.proto == IPPROTO_ICMP) {
		p->l4 = c->pos;
		if (c->pos + 1 > c->end)
			return PH_PASS;
		return PH_FRAME_ICMP;
	}
	if (p->flow.proto != IPPROTO_TCP && p->flow.proto != IPPROTO_UDP)
		return PH_PASS;
	rc = parse_l4(c, p);
	if (rc == PARSE_MALFORMED_L3)
		return count_and(PH_STAT_MALFORMED_L3, PH_DROP);
	if (rc == PARSE_MALFORMED_L4)
		return count_and(PH_STAT_MALFORMED_L4, PH_DROP);
	return PH_FRAME_LB;
}

/* Entry point: packets of known flows and replies are handled here; the rest is tail-called. */
SEC(PH_SEC)
int PH_ENTRY_MAIN(struct ph_ctx *ctx)
{
	struct packet p = {};
	struct cursor c;
	int rc;

	ctx_pull_headers(ctx);
	rc = parse_frame(ctx, &c, &p);
	if (rc == PH_FRAME_LB)
		return lb_process(ctx, &p);
	if (rc == PH_FRAME_ARP || rc == PH_FRAME_ICMP) {
		bpf_tail_call(ctx, &ph_progs, PH_PROG_CONTROL);
		return count_and(PH_STAT_TAIL_CALL_FAIL, PH_PASS);
	}
	return rc;
}

/*
 * First packet of a flow, tail-called by pharos_xdp once it found the
 * frontend and no usable conntrack entry. The packet is parsed again (a
 * tail call keeps only the context); that costs far less than the inserts.
 */
SEC(PH_SEC)
int PH_ENTRY_NEW_FLOW(struct ph_ctx *ctx)
{
	struct ph_fe_value *fe;
	struct packet p = {};
	struct cursor c;

	ctx_pull_headers(ctx);
	if (parse_frame(ctx, &c, &p) != PH_FRAME_LB)
		return PH_PASS;
	/*
	 * Checked here, not per packet: a host that never starts a flow for a
	 * frame meant for another never forwards its copies either (known
	 * flows and replies need an entry made from a frame sent to us).
	 */
	if (!for_this_host(ctx, p.eth))
		return count_and(PH_STAT_FOREIGN_MAC, PH_PASS);
	fe = frontend_get(&p.flow);
	if (!fe)
		return PH_PASS;
	return lb_new_flow(ctx, &p, fe, bpf_ktime_get_coarse_ns());
}

/* ARP, ICMP and ICMPv6 (NDP, echo, errors about our flows), tail-called by pharos_xdp. */
SEC(PH_SEC)
int PH_ENTRY_CONTROL(struct ph_ctx *ctx)
{
	struct packet p = {};
	struct cursor c;
	__u8 *icmp;
	int rc;

	ctx_pull_all(ctx);
	rc = parse_frame(ctx, &c, &p);
	if (rc == PH_FRAME_ARP)
		return handle_arp(ctx, &c, p.eth);
	if (rc != PH_FRAME_ICMP)
		return PH_PASS;
	icmp = p.l4;
	if ((void *)(icmp + 1) > c.end)
		return PH_PASS;
	if (p.flow.proto == IPPROTO_ICMP)
		return *icmp == PH_ICMP_ECHO_REQUEST ? icmp_echo_reply(ctx, &p) : icmp4_error_nat(ctx, &p);
	if (*icmp == PH_ICMP6_ECHO_REQUEST)
		return icmp_echo_reply(ctx, &p);
	if (*icmp < 128) /* ICMPv6 error messages are types 0-127 (RFC 4443) */
		return icmp6_error_nat(ctx, &p);
	return handle_ns(ctx, &p);
}

/* Ethernet + IPv6 with a few extension headers + TCP with options. */
#define PH_TC_PULL_LEN 192

/*
 * tc egress on the external interfaces: a backend on this node answers the
 * client directly (it saw the client's address, no SNAT); make the reply
 * come from the VIP again. Uses the skb helpers because locally generated
 * packets may carry a partial (offloaded) checksum.
 */
SEC("tc")
int pharos_tc_egress(struct __sk_buff *skb)
{
	struct ph_rev *rv;
	struct packet p = {};
	struct cursor c;
	int rc;

	/* Headers of a locally built skb may sit partly in paged data: make the first bytes linear. */
	if (skb->data_end - skb->data < PH_TC_PULL_LEN)
		bpf_skb_pull_data(skb, skb->len < PH_TC_PULL_LEN ? skb->len : PH_TC_PULL_LEN);
	c.pos = (void *)(long)skb->data;
	c.end = (void *)(long)skb->data_end;
	c.partial = 1;

	/* The same walk as parse_frame(), without its verdicts: whatever is not a TCP/UDP reply leaves untouched. */
	rc = parse_eth(&c, &p.eth);
	if (rc < 0 || parse_ip(&c, &p, rc) != PARSE_OK)
		return TC_ACT_OK;
	if ((p.flow.proto != IPPROTO_TCP && p.flow.proto != IPPROTO_UDP) || parse_l4(&c, &p) != PARSE_OK)
		return TC_ACT_OK;
	/*
	 * Keys of SNAT entries name the node as destination, so they never
	 * match a packet leaving it: a hit is a direct (DNAT-only) reply — a
	 * backend on this node, or a Local-policy backend whose reply the
	 * kernel forwarded without passing our XDP (pod veths carry none).
	 */
	rv = bpf_map_lookup_elem(&ph_rev, &p.flow);
	if (!rv)
		return TC_ACT_OK;
	/* A helper that refused left the frame half rewritten: from the backend's address with the VIP's checksum. */
	if (nat_reply_from_vip_skb(skb, &p, rv)) {
		stat_inc(PH_STAT_MALFORMED_L4);
		return TC_ACT_SHOT;
	}
	stat_inc(PH_STAT_TC_REV_NAT);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
