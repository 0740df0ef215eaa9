// SPDX-License-Identifier: GPL-2.0
/*
 * Test program for the fixture runner itself (test/support/fixtures.ts):
 * small but with every verdict and one in-place rewrite, so the runner's
 * verdict and output comparisons are exercised against a real kernel.
 *
 *   ARP                         -> XDP_DROP
 *   IPv4 UDP to port 9          -> XDP_DROP (discard)
 *   IPv4 ICMP echo request      -> XDP_TX as an echo reply (MACs, addresses
 *                                  swapped, type 0, checksum updated)
 *   IPv4 UDP to port 7          -> XDP_ABORTED
 *   anything shorter than Ethernet + IPv4, or anything else -> XDP_PASS
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* linux/icmp.h pulls in glibc headers that do not build with -target bpf. */
#define ICMP_ECHOREPLY 0
#define ICMP_ECHO 8
struct icmp_echo_hdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be16 id;
	__be16 sequence;
};

SEC("xdp")
int xdp_fixture(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	__u8 mac[ETH_ALEN];
	__be32 addr;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_ARP))
		return XDP_DROP;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end || ip->ihl != 5)
		return XDP_PASS;

	if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *udp = (void *)(ip + 1);

		if ((void *)(udp + 1) > data_end)
			return XDP_PASS;
		if (udp->dest == bpf_htons(9))
			return XDP_DROP;
		if (udp->dest == bpf_htons(7))
			return XDP_ABORTED;
		return XDP_PASS;
	}
	if (ip->protocol == IPPROTO_ICMP) {
		struct icmp_echo_hdr *icmp = (void *)(ip + 1);
		__u32 sum;

		if ((void *)(icmp + 1) > data_end || icmp->type != ICMP_ECHO)
			return XDP_PASS;
		__builtin_memcpy(mac, eth->h_source, ETH_ALEN);
		__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
		__builtin_memcpy(eth->h_dest, mac, ETH_ALEN);
		addr = ip->saddr;
		ip->saddr = ip->daddr;
		ip->daddr = addr;
		icmp->type = ICMP_ECHOREPLY;
		/* RFC 1624: HC' = ~(~HC + ~m + m'); the type byte is the high byte of its word. */
		sum = (__u16)~bpf_ntohs(icmp->checksum) + (__u16)~(ICMP_ECHO << 8) + (ICMP_ECHOREPLY << 8);
		sum = (sum & 0xffff) + (sum >> 16);
		sum = (sum & 0xffff) + (sum >> 16);
		icmp->checksum = bpf_htons(~sum & 0xffff);
		return XDP_TX;
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
