// SPDX-License-Identifier: GPL-2.0
/*
 * Minimal native XDP program for lab veth peers. A frame that another XDP
 * program sends with XDP_TX or redirects into a veth is dropped unless the
 * receiving peer has a native XDP program (see shared LAB-FACTS); this one
 * only lets every frame continue to the stack.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
