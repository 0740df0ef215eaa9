// SPDX-License-Identifier: GPL-2.0
/*
 * Test-only: a few hundred verified instructions (a long verifier log), then
 * a packet read without a bounds check, which the verifier must reject. The
 * reason sits at the very end of the log.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_unchecked(struct xdp_md *ctx)
{
	unsigned char *data = (unsigned char *)(long)ctx->data;
	unsigned char *data_end = (unsigned char *)(long)ctx->data_end;
	unsigned int sum = 0;

	if (data + 64 > data_end)
		return XDP_PASS;
#pragma unroll
	for (int i = 0; i < 64; i++)
		sum = sum * 31 + data[i];
	return data[sum & 0xff] == 0x45 ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
