/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Foreign answers: another MAC claiming an address this node answers for
 * (a gratuitous ARP, an ARP reply, an IPv6 neighbour advertisement). Two
 * nodes answering for one address is split brain; the agent reads this map
 * to report it and, while the Kubernetes API is unreachable (no lease to
 * trust), to stop answering for that address (src/l2/outage-core.ts).
 * The frame itself is always passed on: the kernel's neighbour table, not
 * ours, decides what to make of it.
 */
#ifndef PHAROS_L2_FOREIGN_H
#define PHAROS_L2_FOREIGN_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "lib/maps.h"

/* Per address and interface (the responder's key). 24 bytes. */
struct ph_l2_foreign {
	__u64 count;		/* 0: foreign answers seen */
	__u64 last_ns;		/* 8: CLOCK_MONOTONIC of the last one */
	__u8 mac[6];		/* 16: the MAC that sent the last one */
	__u16 pad;		/* 22 */
};

/* Only addresses we answer for get an entry: a few hundred conflicts at most; LRU forgets the oldest. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 256);
	__type(key, struct ph_resp_key);
	__type(value, struct ph_l2_foreign);
} ph_l2_foreign SEC(".maps");

/* Byte by byte: clang leaves a 6-byte __builtin_memcmp as a call to memcmp, which BPF has not. */
static __always_inline int l2_same_mac(const __u8 *a, const __u8 *b)
{
	return !((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4]) | (a[5] ^ b[5]));
}

/**
 * l2_foreign_note() - count @mac announcing @addr on @ifindex when it is not
 * the MAC we answer with (@ours, the responder entry of that address).
 * Races between CPUs only blur which MAC is kept as the last: the count is
 * atomic.
 */
static __always_inline void l2_foreign_note(const void *addr, __u8 family, __u32 ifindex,
					    const struct ph_resp_value *ours, const __u8 *mac)
{
	struct ph_resp_key k = {};
	struct ph_l2_foreign *f, fresh = {};

	if (l2_same_mac(ours->mac, mac))
		return;
	responder_key(&k, addr, family, ifindex);
	f = bpf_map_lookup_elem(&ph_l2_foreign, &k);
	if (f) {
		__sync_fetch_and_add(&f->count, 1);
		f->last_ns = bpf_ktime_get_ns();
		__builtin_memcpy(f->mac, mac, 6);
		return;
	}
	fresh.count = 1;
	fresh.last_ns = bpf_ktime_get_ns();
	__builtin_memcpy(fresh.mac, mac, 6);
	bpf_map_update_elem(&ph_l2_foreign, &k, &fresh, BPF_NOEXIST);
}

#endif
