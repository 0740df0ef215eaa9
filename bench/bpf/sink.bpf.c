// SPDX-License-Identifier: GPL-2.0
/*
 * Benchmark sink: native XDP on the sink end of the chain. Counts every
 * frame per CPU and drops it. Being a native program it also makes the
 * veth accept frames redirected into its peer (shared LAB-FACTS).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sink_pkts SEC(".maps");

SEC("xdp")
int bench_sink(struct xdp_md *ctx)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&sink_pkts, &zero);

	if (n)
		*n += 1;
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
