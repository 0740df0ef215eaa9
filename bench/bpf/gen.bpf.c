// SPDX-License-Identifier: GPL-2.0
/*
 * Benchmark traffic generator (bench/datapath.ts).
 *
 * Run with BPF_PROG_TEST_RUN + BPF_F_TEST_XDP_LIVE_FRAMES in the generator
 * namespace: every run writes a complete 60-byte Ethernet/IPv4/UDP frame
 * (64 bytes on the wire with the FCS) and returns XDP_TX, so the kernel
 * sends it out of the ingress interface given in the test-run context.
 * Live-frame pages are recycled without being reset and the programs down
 * the chain rewrite headers in place, so every byte, both checksums
 * included, is written again for each frame.
 *
 * Flow selection (gen_cfg.mode): one 5-tuple; a cycle over nflows
 * 5-tuples (source port, then source address); or a new 5-tuple for every
 * frame (source port and address counted up over 2^30 tuples).
 *
 * With gen_cfg.tail set, the program instead tail-calls slot 0 of
 * gen_next after writing the frame: a plain (not live) test run of this
 * program then feeds another XDP program a fresh frame on every repeat,
 * which a repeated test run alone cannot do (it reuses the rewritten data).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define GEN_FRAME_LEN 60
#define GEN_PAYLOAD_LEN (GEN_FRAME_LEN - 14 - 20 - 8)

#define GEN_MODE_ONE 0
#define GEN_MODE_CYCLE 1
#define GEN_MODE_NEW 2

/* Source ports and addresses of the all-new stream: 64000 ports x 16384 addresses. */
#define GEN_NEW_PORTS 64000
#define GEN_NEW_ADDRS 16384
#define GEN_PORT_BASE 1024

/* 40 bytes; bench/datapath.ts writes it (offsets in the comments). */
struct gen_cfg {
	__u8 dmac[6];		/* 0 */
	__u8 smac[6];		/* 6 */
	__u32 saddr_base;	/* 12: host order */
	__be32 daddr;		/* 16 */
	__be16 dport;		/* 20 */
	__u16 mode;		/* 22 */
	__u32 nflows;		/* 24: GEN_MODE_CYCLE */
	__u32 ports_per_addr;	/* 28: GEN_MODE_CYCLE */
	__u32 tail;		/* 32 */
	__u32 pad;		/* 36 */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_cfg);
} gen_cfg SEC(".maps");

/* Frames written so far: the flow sequence (one writer: the generator's CPU). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} gen_seq SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} gen_next SEC(".maps");

static const char payload[GEN_PAYLOAD_LEN] = "pharos-bench-64B-!";

static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

SEC("xdp")
int bench_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	struct udphdr *udp = (void *)(ip + 1);
	__u8 *body = (void *)(udp + 1);
	__u32 zero = 0, port, addr_off = 0, sum, i;
	struct gen_cfg *cfg;
	__u16 *w;
	__u64 *seqp, seq;
	__be32 saddr;

	if (data + GEN_FRAME_LEN > data_end)
		return XDP_ABORTED;
	cfg = bpf_map_lookup_elem(&gen_cfg, &zero);
	seqp = bpf_map_lookup_elem(&gen_seq, &zero);
	if (!cfg || !seqp)
		return XDP_ABORTED;
	seq = (*seqp)++;

	switch (cfg->mode) {
	case GEN_MODE_CYCLE: {
		__u32 n = cfg->nflows ? cfg->nflows : 1;
		__u32 per = cfg->ports_per_addr ? cfg->ports_per_addr : 1;
		__u32 idx = (__u32)(seq % n);

		port = GEN_PORT_BASE + idx % per;
		addr_off = idx / per;
		break;
	}
	case GEN_MODE_NEW:
		port = GEN_PORT_BASE + (__u32)(seq % GEN_NEW_PORTS);
		addr_off = (__u32)(seq / GEN_NEW_PORTS) % GEN_NEW_ADDRS;
		break;
	default:
		port = GEN_PORT_BASE;
	}
	saddr = bpf_htonl(cfg->saddr_base + addr_off);

	__builtin_memcpy(eth->h_dest, cfg->dmac, 6);
	__builtin_memcpy(eth->h_source, cfg->smac, 6);
	eth->h_proto = bpf_htons(ETH_P_IP);

	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0;
	ip->tot_len = bpf_htons(GEN_FRAME_LEN - sizeof(*eth));
	ip->id = bpf_htons((__u16)seq);
	ip->frag_off = 0;
	ip->ttl = 64;
	ip->protocol = IPPROTO_UDP;
	ip->check = 0;
	ip->saddr = saddr;
	ip->daddr = cfg->daddr;
	sum = 0;
	w = (__u16 *)ip;
#pragma unroll
	for (i = 0; i < sizeof(*ip) / 2; i++)
		sum += w[i];
	ip->check = csum_fold(sum);

	udp->source = bpf_htons(port);
	udp->dest = cfg->dport;
	udp->len = bpf_htons(sizeof(*udp) + GEN_PAYLOAD_LEN);
	udp->check = 0;
	__builtin_memcpy(body, payload, GEN_PAYLOAD_LEN);
	/* Pseudo-header, then the UDP header and payload as written. */
	sum = (saddr & 0xffff) + (saddr >> 16) + (cfg->daddr & 0xffff) + (cfg->daddr >> 16) +
	      bpf_htons(IPPROTO_UDP) + udp->len;
	w = (__u16 *)udp;
#pragma unroll
	for (i = 0; i < (sizeof(*udp) + GEN_PAYLOAD_LEN) / 2; i++)
		sum += w[i];
	sum = csum_fold(sum);
	udp->check = sum ? sum : 0xffff;

	if (cfg->tail) {
		bpf_tail_call(ctx, &gen_next, 0);
		return XDP_ABORTED;
	}
	return XDP_TX;
}

/* Tail-call target for the baseline: what the frame writing alone costs. */
SEC("xdp")
int bench_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
