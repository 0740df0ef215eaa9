// SPDX-License-Identifier: GPL-2.0
/*
 * Benchmark harness for BPF_PROG_TEST_RUN: test-run hands the program the
 * same buffer on every repeat and a NATing program rewrites it, so each run
 * first restores the frame from a template (and, for the new-flow mode,
 * gives it a fresh source address/port), then tail-calls the program under
 * test. The cost of the harness itself is measured by tail-calling
 * bench_pass and subtracted.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define TMPL_LEN 64

const volatile __u8 tmpl[TMPL_LEN] __attribute__((aligned(8))) = {};
/* 1: every run is a new flow (source port and the low 16 bits of the IPv4 source change). */
const volatile __u32 new_flow = 0;

__u32 counter = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} bench_target SEC(".maps");

SEC("xdp")
int bench_harness(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 *dst = data;
	int i;

	if (data + TMPL_LEN > data_end)
		return XDP_ABORTED;
#pragma unroll
	for (i = 0; i < TMPL_LEN / 8; i++)
		dst[i] = ((const volatile __u64 *)tmpl)[i];
	if (new_flow) {
		__u32 n = ++counter;
		__u8 *b = data;

		/* IPv4 source low bytes (offset 28..29) and UDP source port (34..35). */
		b[28] = n >> 24;
		b[29] = n >> 16;
		b[34] = n >> 8;
		b[35] = n;
	}
	bpf_tail_call(ctx, &bench_target, 0);
	return XDP_ABORTED;
}

SEC("xdp")
int bench_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
