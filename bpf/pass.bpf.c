// SPDX-License-Identifier: GPL-2.0
/*
 * XDP_PASS for the far end of a veth. A frame that XDP redirects or
 * XDP_TXes into a veth is delivered only when the peer runs a native XDP
 * program (see LAB-FACTS); `pharos demo` and `pharos lab` attach this one
 * to every peer of an interface the agent forwards into. Physical NICs do
 * not need it.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int pharos_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
