/* SPDX-License-Identifier: GPL-2.0 */
/*
 * loadBalancerSourceRanges: a frontend with PH_FE_SOURCE_RANGES accepts a
 * packet only when its source falls in one of the frontend's prefixes in
 * ph_src_ranges (sync writes one entry per prefix). Checked on every packet,
 * not only new flows, so narrowing the ranges cuts established flows too,
 * as kube-proxy's filter does.
 */
#ifndef PHAROS_SOURCE_RANGE_H
#define PHAROS_SOURCE_RANGE_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "lib/maps.h"

static __always_inline int source_allowed(__u32 frontend_id, const union ph_addr *src)
{
	struct ph_src_key k = {};

	k.prefixlen = 32 + 128;
	k.frontend_id = frontend_id;
	k.addr = *src;
	return bpf_map_lookup_elem(&ph_src_ranges, &k) != NULL;
}

#endif
