// SPDX-License-Identifier: GPL-2.0
/*
 * Test-only program for the addon tests (test/native/): exercises .rodata patching,
 * max_entries overrides, pinning, per-CPU maps, XDP (verdict set from
 * userspace) and tc attachment. Not part of the product.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Set by the loader before load. */
const volatile __u32 verdict = XDP_PASS;
const volatile __u8 swap_macs = 0;

/* Frames seen by ethertype (XDP). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 64);
} xdp_seen SEC(".maps");

/* Frames seen by ethertype (tc ingress/egress). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 64);
} tc_seen SEC(".maps");

/* Runs of xdp_test, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} runs SEC(".maps");

/* Only its size matters: the test overrides max_entries before load. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 4);
} sized SEC(".maps");

static __always_inline void count(void *map, __u32 key)
{
	__u64 one = 1, *n = bpf_map_lookup_elem(map, &key);

	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(map, &key, &one, BPF_NOEXIST);
}

SEC("xdp")
int xdp_test(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u8 tmp[ETH_ALEN];
	__u32 zero = 0;
	__u64 *n;

	if ((void *)(eth + 1) > data_end)
		return XDP_ABORTED;
	n = bpf_map_lookup_elem(&runs, &zero);
	if (n)
		(*n)++;
	count(&xdp_seen, bpf_ntohs(eth->h_proto));
	if (swap_macs) {
		__builtin_memcpy(tmp, eth->h_dest, ETH_ALEN);
		__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
		__builtin_memcpy(eth->h_source, tmp, ETH_ALEN);
	}
	return verdict;
}

SEC("tc")
int tc_test(struct __sk_buff *skb)
{
	count(&tc_seen, bpf_ntohs(skb->protocol));
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
