/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Flows that survive a backend change (Beamer, NSDI'18): when the Maglev
 * table changes, the LB sends some established flows to a new owner that
 * has no socket for them. The backend that receives such a packet — TCP,
 * not a SYN, no socket on this host for its inner tuple — sends it on,
 * still encapsulated, to the flow's owner in the previous table, which the
 * agent keeps per frontend for a while (ph_dc_prev_fe / ph_dc_prev_slot;
 * every backend computes the same tables as the LB nodes from the same
 * endpoints). Once only: the outer header is marked (IPv4: ID 1; IPv6:
 * flow label bit 19, the LB uses the 19 bits below it), and a marked packet
 * is always delivered here.
 */
#ifndef PHAROS_HANDOFF_H
#define PHAROS_HANDOFF_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "lib/config.h"
#include "lib/maps.h"
#include "lib/maglev.h"
#include "lib/csum.h"

/* Outer-header marks of a handed-off packet. */
#define PH_HANDOFF_ID4 1
#define PH_HANDOFF_LABEL6 (1U << 19)
#define PH_TCP_STATE_LISTEN 10

/* A frontend as the previous tables key it: the inner destination. 20 bytes. */
struct ph_dc_fe {
	__u8 addr[16];
	__be16 port;
	__u8 proto;
	__u8 family;
};

/* Its previous Maglev table: M slots, and where they start in ph_dc_prev_slot. */
struct ph_dc_prev {
	__u32 m;
	__u32 table;
};

struct ph_dc_slot {
	__u32 table;
	__u32 slot;
};

/* The previous owner of one slot: its address (IPv4 in the first 4 bytes) and family. */
struct ph_dc_owner {
	__u8 addr[16];
	__u8 family;
	__u8 pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct ph_dc_fe);
	__type(value, struct ph_dc_prev);
} ph_dc_prev_fe SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ph_dc_slot);
	__type(value, struct ph_dc_owner);
} ph_dc_prev_slot SEC(".maps");

/* Is there a connection (not only a listener) for @f on this host? */
static __always_inline int handoff_has_socket(struct __sk_buff *skb, const struct ph_flow *f)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	__u32 size;
	int found;

	if (f->family == PH_AF_INET) {
		t.ipv4.saddr = f->src.v4;
		t.ipv4.daddr = f->dst.v4;
		t.ipv4.sport = f->sport;
		t.ipv4.dport = f->dport;
		size = sizeof(t.ipv4);
	} else {
		__builtin_memcpy(t.ipv6.saddr, f->src.w, 16);
		__builtin_memcpy(t.ipv6.daddr, f->dst.w, 16);
		t.ipv6.sport = f->sport;
		t.ipv6.dport = f->dport;
		size = sizeof(t.ipv6);
	}
	sk = bpf_skc_lookup_tcp(skb, &t, size, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return 0;
	found = sk->state != PH_TCP_STATE_LISTEN;
	bpf_sk_release(sk);
	return found;
}

/**
 * handoff_owner() - the previous owner of flow @f (inner, client -> VIP)
 * into @o. Returns: 0, or -1 when its frontend has no previous table.
 */
static __always_inline int handoff_owner(const struct ph_flow *f, struct ph_dc_owner *o)
{
	struct ph_dc_fe k = {};
	struct ph_dc_prev *prev;
	struct ph_dc_slot s;
	struct ph_dc_owner *owner;

	__builtin_memcpy(k.addr, f->dst.b, 16);
	k.port = f->dport;
	k.proto = f->proto;
	k.family = f->family;
	prev = bpf_map_lookup_elem(&ph_dc_prev_fe, &k);
	if (!prev || !prev->m)
		return -1;
	s.table = prev->table;
	s.slot = flow_hash(f) % prev->m;
	owner = bpf_map_lookup_elem(&ph_dc_prev_slot, &s);
	if (!owner)
		return -1;
	*o = *owner;
	return 0;
}

#endif
