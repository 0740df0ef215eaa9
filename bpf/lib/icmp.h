/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ICMP/ICMPv6 helpers. Today: the ICMPv6 checksum (pseudo-header + message)
 * the NDP responder needs. Error translation for NATed flows (frag-needed,
 * packet-too-big, unreachable: rewrite the embedded header through ph_rev /
 * ph_ct) and echo replies for VIPs land here with issue 8.
 */
#ifndef PHAROS_ICMP_H
#define PHAROS_ICMP_H

#include <linux/types.h>
#include <linux/in.h>
#include <bpf/bpf_endian.h>
#include "lib/csum.h"

/**
 * icmp6_csum() - checksum of an ICMPv6 message held in @msg (@words 32-bit
 * words, on the stack) sent from @src to @dst.
 */
static __always_inline __u16 icmp6_csum(const __u32 *src, const __u32 *dst, const __u32 *msg, int words)
{
	__u32 sum = 0;
	int i;

#pragma unroll
	for (i = 0; i < 4; i++) {
		sum = csum_add(sum, src[i]);
		sum = csum_add(sum, dst[i]);
	}
	sum = csum_add(sum, bpf_htonl(words * 4));
	sum = csum_add(sum, bpf_htonl(IPPROTO_ICMPV6));
#pragma unroll
	for (i = 0; i < 8; i++) {
		if (i < words)
			sum = csum_add(sum, msg[i]);
	}
	return csum_fold(sum);
}

#endif
