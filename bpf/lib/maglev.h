/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Flow hash and Maglev table lookup. The hash is MurmurHash3 (x86_32) over
 * the 40-byte flow key's words with the cluster-wide seed; maglev.ts has the
 * same function (flowHash) so tests can predict the chosen backend.
 */
#ifndef PHAROS_MAGLEV_H
#define PHAROS_MAGLEV_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "lib/config.h"
#include "lib/maps.h"

static __always_inline __u32 rotl32(__u32 x, int r)
{
	return (x << r) | (x >> (32 - r));
}

static __always_inline __u32 murmur_mix(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51;
	k = rotl32(k, 15);
	k *= 0x1b873593;
	h ^= k;
	h = rotl32(h, 13);
	return h * 5 + 0xe6546b64;
}

/* Hash of the client -> VIP flow: src, dst, ports, then proto | family << 8. */
static __always_inline __u32 flow_hash(const struct ph_flow *f)
{
	__u32 h = cfg_hash_seed;

	h = murmur_mix(h, f->src.w[0]);
	h = murmur_mix(h, f->src.w[1]);
	h = murmur_mix(h, f->src.w[2]);
	h = murmur_mix(h, f->src.w[3]);
	h = murmur_mix(h, f->dst.w[0]);
	h = murmur_mix(h, f->dst.w[1]);
	h = murmur_mix(h, f->dst.w[2]);
	h = murmur_mix(h, f->dst.w[3]);
	h = murmur_mix(h, (__u32)f->sport | ((__u32)f->dport << 16));
	h = murmur_mix(h, (__u32)f->proto | ((__u32)f->family << 8));
	h ^= 40;
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/**
 * maglev_pick() - backend id for a flow hash in a frontend's table.
 * The table id and its size M come from the same frontend value, so a
 * packet never pairs a table with another table's size.
 * Returns: the backend id, or 0 when the frontend has no table.
 */
static __always_inline __u32 maglev_pick(const struct ph_fe_value *fe, __u32 hash)
{
	__u32 m = fe->table_size;
	__u32 slot, elem;
	__u64 *pair;
	void *table;

	if (!m)
		return 0;
	table = bpf_map_lookup_elem(&ph_maglev, &fe->table);
	if (!table)
		return 0;
	slot = hash % m;
	elem = slot >> 1;
	pair = bpf_map_lookup_elem(table, &elem);
	if (!pair)
		return 0;
	return slot & 1 ? (__u32)(*pair >> 32) : (__u32)*pair;
}

#endif
