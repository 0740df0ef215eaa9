// SPDX-License-Identifier: GPL-2.0
/*
 * Benchmark ceiling: the least an XDP forwarder can do per frame. Rewrites
 * both MACs and redirects to a fixed interface; no parsing, no lookups.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

/* 16 bytes; bench/datapath.ts writes it. */
struct redirect_cfg {
	__u8 dmac[6];		/* 0 */
	__u8 smac[6];		/* 6 */
	__u32 ifindex;		/* 12 */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct redirect_cfg);
} redirect_cfg SEC(".maps");

SEC("xdp")
int bench_redirect(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct redirect_cfg *cfg;
	__u32 zero = 0;

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	cfg = bpf_map_lookup_elem(&redirect_cfg, &zero);
	if (!cfg)
		return XDP_DROP;
	__builtin_memcpy(eth->h_dest, cfg->dmac, 6);
	__builtin_memcpy(eth->h_source, cfg->smac, 6);
	return bpf_redirect(cfg->ifindex, 0);
}

char LICENSE[] SEC("license") = "GPL";
