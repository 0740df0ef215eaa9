/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Maps and structs of the socket-level load balancer (bpf/sock.bpf.c) that
 * the XDP object does not have. The frontends, backends and Maglev tables
 * are the XDP object's own (maps.h), opened from the same pins. The
 * TypeScript mirror is SOCK_* in src/datapath/abi.ts (sizes and the counter
 * enum; test/datapath/sock-abi.test.ts parses this file and compares), so
 * keep one counter per line in the form PH_SOCK_STAT_<NAME>.
 */
#ifndef PHAROS_SOCK_MAPS_H
#define PHAROS_SOCK_MAPS_H

#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include "lib/maps.h"

/*
 * Reverse translation for recvmsg/getpeername: the socket (by cookie) and
 * the backend address as the socket sees it (an IPv4 backend of an IPv6
 * socket is ::ffff:a.b.c.d, family AF_INET6) -> what the application asked
 * for. 32 bytes.
 */
struct ph_sock_rev_key {
	__u64 cookie;		/* 0: bpf_get_socket_cookie */
	union ph_addr addr;	/* 8: backend address */
	__be16 port;		/* 24: backend port */
	__u8 family;		/* 26: PH_AF_INET/INET6 of the socket's view */
	__u8 pad[5];		/* 27 */
};

/* 24 bytes. */
struct ph_sock_rev_value {
	union ph_addr addr;	/* 0: service address as the application gave it */
	__be16 port;		/* 16 */
	__u8 family;		/* 18 */
	__u8 pad;		/* 19 */
	__u32 frontend_id;	/* 20 */
};

/*
 * sessionAffinity ClientIP for node-local clients: the node's processes
 * share the node's addresses, so the client identity is the network
 * namespace (one per pod or host), as in Cilium's socket LB. 16 bytes; the
 * value is maps.h's struct ph_aff_value.
 */
struct ph_sock_aff_key {
	__u64 netns_cookie;	/* 0: bpf_get_netns_cookie */
	__u32 frontend_id;	/* 8 */
	__u32 pad;		/* 12 */
};

enum ph_sock_stat {
	PH_SOCK_STAT_CONNECT = 0,	/* connect() to a frontend sent to a backend */
	PH_SOCK_STAT_SENDMSG = 1,	/* UDP datagram to a frontend sent to a backend */
	PH_SOCK_STAT_NO_BACKEND = 2,	/* connect() to a frontend without a usable backend refused (ECONNREFUSED) */
	PH_SOCK_STAT_REV = 3,		/* recvmsg/getpeername answered with the service address */
	PH_SOCK_STAT_REV_FAIL = 4,	/* reverse entry could not be stored (recvmsg/getpeername would show the backend) */
	PH_SOCK_STAT_AFFINITY_HIT = 5,	/* placed on the namespace's remembered backend */
	PH_SOCK_STAT_MAX = 6,
};

/* LRU: a lost entry only means recvmsg/getpeername show the backend's address. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ph_sock_rev_key);
	__type(value, struct ph_sock_rev_value);
} ph_sock_rev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct ph_sock_aff_key);
	__type(value, struct ph_aff_value);
} ph_sock_aff SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PH_SOCK_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} ph_sock_stats SEC(".maps");

static __always_inline void sock_stat_inc(__u32 reason)
{
	__u64 *c = bpf_map_lookup_elem(&ph_sock_stats, &reason);

	if (c)
		*c += 1;
}

#endif
