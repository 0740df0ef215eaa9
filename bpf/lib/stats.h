/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Counters. Every drop and every XDP_PASS of a packet that concerned us has
 * a named reason; src/datapath/abi.ts mirrors this enum (a test parses this
 * file and compares), so keep one name per line in the form PH_STAT_<NAME>,
 * its comment starting "drop:" when the packet is dropped, "pass:" when it
 * goes to the kernel (abi.ts DROP_REASONS / PASS_REASONS), and neither for
 * events (replies sent, forwarding, conntrack).
 */
#ifndef PHAROS_STATS_H
#define PHAROS_STATS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

enum ph_stat {
	PH_STAT_MALFORMED_L2 = 0,	/* drop: truncated Ethernet/VLAN/ARP */
	PH_STAT_MALFORMED_L3 = 1,	/* drop: truncated IP header, bad IHL/version/length */
	PH_STAT_MALFORMED_L4 = 2,	/* drop: truncated TCP/UDP header, bad UDP length, to a frontend; or one the tc egress helpers refused to rewrite */
	PH_STAT_FRAGMENT = 3,		/* pass: IP fragment (no ports to look up) */
	PH_STAT_IPV6_EXT_LIMIT = 4,	/* pass: more IPv6 extension headers than we walk */
	PH_STAT_NO_BACKEND = 5,		/* drop: frontend has no usable backend */
	PH_STAT_BACKEND_GONE = 6,	/* drop: flow's backend removed and the frontend's policy is reset */
	PH_STAT_SNAT_EXHAUSTED = 7,	/* drop: no free SNAT port after bounded retries */
	PH_STAT_CT_INSERT_FAIL = 8,	/* drop: conntrack/NAT map insert failed */
	PH_STAT_FIB_FAIL = 9,		/* drop: no route to the backend/client */
	PH_STAT_NO_NEIGH = 10,		/* pass: NATed packet handed to the kernel to resolve the neighbour */
	PH_STAT_LOCAL_BACKEND = 11,	/* pass: DNATed to a backend on this node */
	PH_STAT_REDIRECT_FAIL = 12,	/* drop: redirect to the egress interface refused */
	PH_STAT_FWD_TX = 13,		/* forwarded back out of the ingress interface */
	PH_STAT_FWD_REDIRECT = 14,	/* forwarded to another interface */
	PH_STAT_CT_CREATE = 15,		/* new conntrack entry */
	PH_STAT_CT_HIT = 16,		/* packet of a known flow */
	PH_STAT_REV_NAT = 17,		/* reply rewritten back to VIP -> client */
	PH_STAT_ARP_REPLY = 18,		/* ARP request answered */
	PH_STAT_NA_REPLY = 19,		/* neighbour solicitation answered */
	PH_STAT_RESPONDER_STALE = 20,	/* pass: would answer, but the agent's liveness stamp is stale */
	PH_STAT_ARP_IGNORED = 21,	/* pass: gratuitous/conflicting ARP for one of our addresses */
	PH_STAT_TC_REV_NAT = 22,	/* tc egress: locally delivered reply rewritten to come from the VIP */
	PH_STAT_BACKEND_REBALANCED = 23, /* flow moved off a removed backend */
	PH_STAT_SOURCE_RANGE = 24,	/* drop: source outside the frontend's loadBalancerSourceRanges */
	PH_STAT_AFFINITY_HIT = 25,	/* new flow placed on the client's affinity backend */
	PH_STAT_ICMP_ECHO_REPLY = 26,	/* ICMP/ICMPv6 echo request to a service address answered */
	PH_STAT_ICMP_TOO_BIG = 27,	/* too big for the egress MTU: ICMP frag-needed / packet-too-big sent back */
	PH_STAT_ICMP_ERROR_NAT = 28,	/* ICMP error about a NATed flow translated and sent on */
	PH_STAT_TAIL_CALL_FAIL = 29,	/* pass: a tail-call slot was empty (object loaded without the loader) */
	PH_STAT_TTL_EXCEEDED = 30,	/* pass: TTL / hop limit would reach 0 here; untouched, the kernel sends time exceeded */
	PH_STAT_FOREIGN_MAC = 31,	/* pass: first packet of a flow (any packet of a DSR frontend) sent to another host's MAC (flooded, promiscuous); not forwarded */
	PH_STAT_DSR_L2 = 32,		/* DSR frontend: sent to its backend with only the MACs rewritten */
	PH_STAT_DSR_OFFLINK = 33,	/* drop: DSR backend not on a segment of this node (behind a router) and the frontend asks L2 dispatch only */
	PH_STAT_DSR_NO_NEIGH = 34,	/* drop: DSR L2 backend's MAC not resolved yet */
	PH_STAT_DSR_ICMP = 35,		/* ICMP error about a DSR flow's reply, sent on to that flow's backend */
	PH_STAT_DSR_ENCAP = 36,		/* DSR frontend: sent to its backend in IPIP / IP6IP6 */
	PH_STAT_DSR_ENCAP_FAIL = 37,	/* drop: DSR encapsulation impossible (VLAN-tagged frame, no outer source address, helper refused) */
	PH_STAT_DSR_TOO_BIG = 38,	/* drop: too big once encapsulated and not answerable with frag-needed (IPv4 without DF, an ICMP error) */
	PH_STAT_MAX = 39,
};

/* Per-frontend and per-backend traffic (client -> backend direction). */
struct ph_traffic {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PH_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} ph_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct ph_traffic);
} ph_fe_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 131072);
	__type(key, __u32);
	__type(value, struct ph_traffic);
} ph_be_stats SEC(".maps");

static __always_inline void stat_inc(__u32 reason)
{
	__u64 *c = bpf_map_lookup_elem(&ph_stats, &reason);

	if (c)
		*c += 1;
}

/* Count @reason and return @verdict: every exit of a packet that concerned us names its reason. */
static __always_inline int count_and(__u32 reason, int verdict)
{
	stat_inc(reason);
	return verdict;
}

static __always_inline void traffic_add(void *map, __u32 id, __u64 bytes)
{
	struct ph_traffic *t = bpf_map_lookup_elem(map, &id);

	if (t) {
		t->packets += 1;
		t->bytes += bytes;
	}
}

#endif
