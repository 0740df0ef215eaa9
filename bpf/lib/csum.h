/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Internet checksum arithmetic (RFC 1071/1624). Values are summed as they
 * lie in memory (network order words read raw): the one's complement sum is
 * byte-order independent, so no swaps are needed.
 */
#ifndef PHAROS_CSUM_H
#define PHAROS_CSUM_H

#include <linux/types.h>
#include "lib/maps.h"

static __always_inline __u32 csum_add(__u32 a, __u32 b)
{
	a += b;
	return a + (a < b);
}

static __always_inline __u16 csum_fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

/* Partial sum for replacing the 32-bit word `from` with `to`. */
static __always_inline __u32 csum_diff32(__u32 acc, __u32 from, __u32 to)
{
	return csum_add(csum_add(acc, ~from), to);
}

static __always_inline __u32 csum_diff16(__u32 acc, __u16 from, __u16 to)
{
	return csum_add(csum_add(acc, (__u16)~from), to);
}

/* Partial sum for replacing an address (4 or 16 bytes by family). */
static __always_inline __u32 csum_diff_addr(__u32 acc, const union ph_addr *from,
					    const union ph_addr *to, __u8 family)
{
	acc = csum_diff32(acc, from->w[0], to->w[0]);
	if (family == PH_AF_INET6) {
		acc = csum_diff32(acc, from->w[1], to->w[1]);
		acc = csum_diff32(acc, from->w[2], to->w[2]);
		acc = csum_diff32(acc, from->w[3], to->w[3]);
	}
	return acc;
}

/* Apply a partial sum to a stored checksum field. */
static __always_inline __u16 csum_apply(__u16 check, __u32 diff)
{
	return csum_fold(csum_add((__u16)~check, diff));
}

#endif
