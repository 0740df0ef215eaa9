/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Map layout shared with userspace. src/datapath/abi.ts encodes and decodes
 * every struct here byte for byte (offsets in the comments). The max_entries
 * below are the default sizes (MAX_ENTRIES in abi.ts, checked against this
 * object's BTF): the loader creates these unless told otherwise
 * (--conntrack-size and the other map-size flags).
 * Addresses are 16 bytes; an IPv4 address sits in the first 4 (rest zero).
 * Ports and addresses are in network byte order.
 */
#ifndef PHAROS_MAPS_H
#define PHAROS_MAPS_H

#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#define PH_AF_INET 2
#define PH_AF_INET6 10

union ph_addr {
	__u32 v4;
	__u32 w[4];
	__u8 b[16];
};

/* Frontend = {VIP, port, protocol}. 20 bytes. */
struct ph_fe_key {
	union ph_addr addr;	/* 0 */
	__be16 port;		/* 16 */
	__u8 proto;		/* 18: IPPROTO_TCP/UDP */
	__u8 family;		/* 19: PH_AF_INET/INET6 */
};

/* ph_fe_value.flags */
#define PH_FE_RESET_ON_REMOVE	(1 << 0) /* flows of a removed backend are dropped, not re-balanced */
#define PH_FE_LOCAL_ONLY	(1 << 1) /* externalTrafficPolicy Local: node-local backends only, no SNAT */
#define PH_FE_AFFINITY		(1 << 2) /* sessionAffinity ClientIP: ph_affinity keeps client -> backend */
#define PH_FE_SOURCE_RANGES	(1 << 3) /* loadBalancerSourceRanges: sources must match ph_src_ranges */
#define PH_FE_DSR		(1 << 4) /* direct server return: no NAT, no flow state (lib/dsr.h); L2 dispatch to on-link backends, IPIP/IP6IP6 to the rest */
#define PH_FE_DSR_ENCAP		(1 << 5) /* DSR: always encapsulate (lb.pharos.io/dsr-dispatch: ipip) */
#define PH_FE_DSR_L2		(1 << 6) /* DSR: L2 dispatch only, never encapsulate (dsr-dispatch: l2) */

/*
 * 24 bytes. The table and its size travel together in this value, so one
 * (atomic) update of the entry moves a frontend to a new Maglev table of
 * any size; frontends with the same backend set share one table.
 */
struct ph_fe_value {
	__u32 id;		/* 0: index into ph_fe_stats and flow state; 0 is never used */
	__u16 flags;		/* 4 */
	__u16 backends;		/* 6: backends in the Maglev table (0 = no_backend for new flows) */
	__u32 affinity_timeout;	/* 8: seconds, with PH_FE_AFFINITY */
	__u32 table;		/* 12: key of the Maglev table in ph_maglev */
	__u32 table_size;	/* 16: M, the table's slot count (prime); 0 = no table */
	__u32 reserved;		/* 20 */
};

/* 20 bytes; key is the backend id (u32). family 0 = no backend with this id. */
struct ph_backend {
	union ph_addr addr;	/* 0 */
	__be16 port;		/* 16 */
	__u8 family;		/* 18: PH_AF_INET/INET6, 0 = free slot */
	__u8 flags;		/* 19: PH_BE_* */
};

/* ph_backend.flags */
#define PH_BE_DRAINING		(1 << 0) /* terminating/maintenance: keeps its flows, takes no new ones (not even by affinity) */
#define PH_BE_LOCAL		(1 << 1) /* an address of this node: the local stack delivers (the agent knows, the FIB cannot tell it from no route) */
/* Learned by the DSR path from the FIB with the cached next hop (ph_be_nh); the agent's writes clear them, the next packet learns again. */
#define PH_BE_ONLINK		(1 << 2) /* on a segment of this node: L2 dispatch reaches it */
#define PH_BE_OFFLINK		(1 << 3) /* behind a router: only encapsulation reaches it */

/* One direction of a flow, as seen on the wire. 40 bytes. */
struct ph_flow {
	union ph_addr src;	/* 0 */
	union ph_addr dst;	/* 16 */
	__be16 sport;		/* 32 */
	__be16 dport;		/* 34 */
	__u8 proto;		/* 36 */
	__u8 family;		/* 37 */
	__u16 pad;		/* 38 */
};

/* @r = @f as its other end sends: the reply direction of a flow. */
static __always_inline void flow_reverse(struct ph_flow *r, const struct ph_flow *f)
{
	r->src = f->dst;
	r->dst = f->src;
	r->sport = f->dport;
	r->dport = f->sport;
	r->proto = f->proto;
	r->family = f->family;
	r->pad = 0;
}

/* Cached next hop. 16 bytes. */
struct ph_nexthop {
	__u32 ifindex;		/* 0: 0 = not resolved yet */
	__u8 smac[6];		/* 4 */
	__u8 dmac[6];		/* 10 */
};

/* ph_ct.state */
#define PH_CT_NEW		1 /* SYN seen / first UDP packet */
#define PH_CT_ESTABLISHED	2
#define PH_CT_CLOSING		3 /* FIN or RST seen */

/* ph_ct.flags / ph_rev.flags */
#define PH_CTF_SNAT	(1 << 0)
#define PH_CTF_LOCAL	(1 << 1) /* backend on this node: kernel delivers, tc egress reverses */

/*
 * Conntrack, keyed by the client -> VIP flow. 40 bytes. Times are
 * bpf_ktime_get_coarse_ns (CLOCK_MONOTONIC_COARSE: cheaper per packet than
 * the TSC read; a tick of resolution is plenty for timeouts). The next hop
 * is not here but per backend (ph_be_nh): one FIB lookup serves every flow.
 */
struct ph_ct {
	__u64 last_seen;	/* 0 */
	__u32 backend_id;	/* 8 */
	__u32 frontend_id;	/* 12 */
	union ph_addr snat_addr; /* 16 */
	__be16 snat_port;	/* 32 */
	__u8 state;		/* 34 */
	__u8 flags;		/* 35 */
	__u32 pad;		/* 36 */
};

/* Cached next hop toward a backend, indexed by backend id. 24 bytes. */
struct ph_be_nh {
	struct ph_nexthop nh;	/* 0 */
	__u64 fib_at;		/* 16: coarse ns when resolved */
};

/*
 * Reverse NAT, keyed by the reply flow as it arrives (backend -> node:snat
 * port, or backend -> client for a local backend); rewrites it to
 * VIP -> client. 80 bytes.
 */
struct ph_rev {
	__u64 last_seen;	/* 0 */
	__u64 fib_at;		/* 8 */
	union ph_addr new_src;	/* 16: VIP */
	union ph_addr new_dst;	/* 32: client */
	__be16 new_sport;	/* 48: VIP port */
	__be16 new_dport;	/* 50: client port */
	__u32 frontend_id;	/* 52 */
	struct ph_nexthop nh;	/* 56 */
	__u32 backend_id;	/* 72 */
	__u8 flags;		/* 76 */
	__u8 pad[3];		/* 77 */
};

/* The client -> VIP flow (conntrack key) whose replies reverse entry @r rewrites; @proto and @family as the reply's. */
static __always_inline void rev_client_flow(struct ph_flow *fk, const struct ph_rev *r, __u8 proto, __u8 family)
{
	fk->src = r->new_dst;
	fk->dst = r->new_src;
	fk->sport = r->new_dport;
	fk->dport = r->new_sport;
	fk->proto = proto;
	fk->family = family;
	fk->pad = 0;
}

/* Node-wide state the agent may change at any time. 40 bytes. */
struct ph_runtime {
	union ph_addr snat_v4;	/* 0: node address for SNAT (first 4 bytes) */
	union ph_addr snat_v6;	/* 16 */
	__u16 port_min;		/* 32: host order, inclusive */
	__u16 port_max;		/* 34: host order, inclusive */
	__u32 flags;		/* 36: reserved */
};

/*
 * The agent's liveness stamp (CLOCK_MONOTONIC ns; 0 = never), alone in its
 * map: a thread of the agent that JavaScript work cannot starve refreshes it
 * without touching ph_runtime. 8 bytes.
 */
struct ph_liveness {
	__u64 stamp_ns;		/* 0 */
};

/* Responder key: an address we answer ARP/NS for on one interface. 24 bytes. */
struct ph_resp_key {
	union ph_addr addr;	/* 0 */
	__u32 ifindex;		/* 16 */
	__u8 family;		/* 20 */
	__u8 pad[3];		/* 21 */
};

/* The responder key of @addr (4 or 16 bytes by @family) on @ifindex; @k zeroed by the caller. */
static __always_inline void responder_key(struct ph_resp_key *k, const void *addr, __u8 family, __u32 ifindex)
{
	if (family == PH_AF_INET)
		__builtin_memcpy(k->addr.b, addr, 4);
	else
		__builtin_memcpy(k->addr.b, addr, 16);
	k->ifindex = ifindex;
	k->family = family;
}

/* 8 bytes. */
struct ph_resp_value {
	__u8 mac[6];		/* 0: the MAC to answer with */
	__u16 flags;		/* 6: reserved */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ph_fe_key);
	__type(value, struct ph_fe_value);
} ph_frontends SEC(".maps");

/* An array, not a hash: the established path looks the backend up per packet and array lookups are inlined. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 131072);
	__type(key, __u32);
	__type(value, struct ph_backend);
} ph_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 131072);
	__type(key, __u32);
	__type(value, struct ph_be_nh);
} ph_be_nh SEC(".maps");

/* The frontend a packet of flow @f is addressed to ({dst, dport, proto}), or NULL. */
static __always_inline struct ph_fe_value *frontend_get(const struct ph_flow *f)
{
	struct ph_fe_key k = {};

	k.addr = f->dst;
	k.port = f->dport;
	k.proto = f->proto;
	k.family = f->family;
	return bpf_map_lookup_elem(&ph_frontends, &k);
}

static __always_inline struct ph_backend *backend_get(__u32 id)
{
	struct ph_backend *be = bpf_map_lookup_elem(&ph_backends, &id);

	return be && be->family ? be : NULL;
}

/*
 * Maglev tables: table id -> inner array holding M backend ids, two per
 * 8-byte element (slot s is the low half of element s/2 when s is even, the
 * high half when odd): array elements are 8-byte aligned in the kernel, so a
 * u32 per element would waste half the table's memory. A table is never
 * written while in use: a new one is built and frontends move to it.
 */
struct ph_maglev_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	/*
	 * BPF_F_INNER_MAP: inner tables may have any size; M is chosen per
	 * backend set. BPF_F_MMAPABLE: the agent fills a new table with one
	 * memcpy (a batched update copies element by element: ~0.2 ms a table).
	 */
	__uint(map_flags, BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__array(values, struct ph_maglev_inner);
} ph_maglev SEC(".maps");

/*
 * Conntrack and reverse NAT: LRU hashes with one LRU list shared by all CPUs.
 * Measured with BPF_PROG_TEST_RUN on this 2-vCPU VM (bench/datapath-testrun.ts,
 * 262,144 entries, 10^6 packets, median of 5, harness subtracted):
 *   shared LRU:   new flow 2.5 us/pkt, established 128-181 ns/pkt
 *   per-CPU LRU (BPF_F_NO_COMMON_LRU): new flow 3.5-4.2 us/pkt, established 115-171 ns/pkt
 * Established is the same within noise; new flows (where the LRU evicts)
 * are cheaper shared, and per-CPU lists would also split the capacity by
 * CPU (LAB-FACTS). The bench builds the per-CPU variant with -DPH_CT_MAP_FLAGS.
 */
#ifndef PH_CT_MAP_FLAGS
#define PH_CT_MAP_FLAGS 0
#endif

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(map_flags, PH_CT_MAP_FLAGS);
	__uint(max_entries, 262144);
	__type(key, struct ph_flow);
	__type(value, struct ph_ct);
} ph_ct SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(map_flags, PH_CT_MAP_FLAGS);
	__uint(max_entries, 262144);
	__type(key, struct ph_flow);
	__type(value, struct ph_rev);
} ph_rev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ph_runtime);
} ph_runtime SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ph_liveness);
} ph_liveness SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, struct ph_resp_key);
	__type(value, struct ph_resp_value);
} ph_responder SEC(".maps");

/*
 * MAC of each interface the program is attached to (ifindex -> MAC), so a
 * frame addressed to another host (flooded by a switch, or seen on a veth)
 * starts no flow here. Written by the loader on attach.
 */
struct ph_if_mac {
	__u8 mac[6];		/* 0 */
	__u16 pad;		/* 6 */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct ph_if_mac);
} ph_if_macs SEC(".maps");

/*
 * SNAT source per egress interface (ifindex -> its address per family), as
 * MASQUERADE picks it: a backend behind another interface than the
 * client's must see an address it can answer to. All zero for a family:
 * ph_runtime's node-wide address. Written by the agent.
 */
struct ph_if_snat {
	union ph_addr v4;	/* 0 */
	union ph_addr v6;	/* 16 */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct ph_if_snat);
} ph_if_snat SEC(".maps");

/*
 * Tail-call slots. The entry program (pharos_xdp) keeps the per-packet path
 * of known flows; the first packet of a flow and the control traffic
 * (ARP, ICMP, NDP) are separate programs, each verified on its own (one
 * program with everything came within 2% of the verifier's 1M-instruction
 * budget). Pinned like the data maps: an unpinned prog array is emptied by
 * the kernel when the agent's last fd closes, which would stop new flows
 * while the agent is down. The loader fills it from its own object.
 */
#define PH_PROG_NEW_FLOW	0
#define PH_PROG_CONTROL		1
#define PH_PROG_MAX		2

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, PH_PROG_MAX);
	__type(key, __u32);
	__type(value, __u32);
} ph_progs SEC(".maps");

/*
 * loadBalancerSourceRanges: LPM trie keyed {frontend id, source prefix}.
 * prefixlen counts the 32 bits of the frontend id plus the prefix bits, so
 * one trie serves every frontend. 24 bytes.
 */
struct ph_src_key {
	__u32 prefixlen;	/* 0: 32 + prefix length */
	__u32 frontend_id;	/* 4: always matched in full (prefixlen >= 32) */
	union ph_addr addr;	/* 8 */
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 16384);
	__type(key, struct ph_src_key);
	__type(value, __u32);
} ph_src_ranges SEC(".maps");

/* sessionAffinity ClientIP: {frontend id, client address} -> backend. 24 bytes. */
struct ph_aff_key {
	__u32 frontend_id;	/* 0 */
	__u8 family;		/* 4 */
	__u8 pad[3];		/* 5 */
	union ph_addr client;	/* 8 */
};

/* 16 bytes. */
struct ph_aff_value {
	__u64 last_seen;	/* 0: coarse ns of the client's last new flow */
	__u32 backend_id;	/* 8 */
	__u32 pad;		/* 12 */
};

/* LRU: a forgotten affinity only means the next flow is placed by Maglev again. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ph_aff_key);
	__type(value, struct ph_aff_value);
} ph_affinity SEC(".maps");

/*
 * Backends that may take new flows of a frontend, for frontends with
 * PH_FE_AFFINITY: a remembered backend is used only while it is still a
 * member (a backend shared with other frontends may leave this one and stay
 * in ph_backends). Key {frontend id, backend id}, 8 bytes; value unused.
 */
struct ph_member_key {
	__u32 frontend_id;	/* 0 */
	__u32 backend_id;	/* 4 */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ph_member_key);
	__type(value, __u32);
} ph_fe_members SEC(".maps");

/*
 * Service addresses (LoadBalancer and external IPs) of this node's
 * frontends, whatever the port: ICMP echo requests to them are answered in
 * XDP. 20 bytes -> frontends using the address (informational).
 */
struct ph_vip_key {
	union ph_addr addr;	/* 0 */
	__u8 family;		/* 16 */
	__u8 pad[3];		/* 17 */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ph_vip_key);
	__type(value, __u32);
} ph_vips SEC(".maps");

/* Per-CPU scratch where the new-flow path builds its entries, off the 512-byte stack. */
struct ph_scratch {
	struct ph_ct ct;
	struct ph_rev rv;
	struct ph_flow rk;
	struct ph_aff_key ak;
	struct ph_aff_value av;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ph_scratch);
} ph_scratch SEC(".maps");

static __always_inline struct ph_runtime *runtime_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&ph_runtime, &zero);
}

/* The SNAT source of a packet leaving by @ifindex: that interface's address, else the node-wide one. */
static __always_inline const union ph_addr *snat_source(const struct ph_runtime *rt, __u32 ifindex, __u8 family)
{
	const struct ph_if_snat *is = bpf_map_lookup_elem(&ph_if_snat, &ifindex);

	if (is) {
		const union ph_addr *a = family == PH_AF_INET ? &is->v4 : &is->v6;

		if (a->w[0] | a->w[1] | a->w[2] | a->w[3])
			return a;
	}
	return family == PH_AF_INET ? &rt->snat_v4 : &rt->snat_v6;
}

static __always_inline struct ph_liveness *liveness_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&ph_liveness, &zero);
}

#endif
