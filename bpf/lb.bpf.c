// SPDX-License-Identifier: GPL-2.0
/* Placeholder entry point; the data path lands with the foundation issue. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int pharos_xdp(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
