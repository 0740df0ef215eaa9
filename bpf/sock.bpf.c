// SPDX-License-Identifier: GPL-2.0
/*
 * Socket-level load balancing for node-local clients (cgroup v2 sock_addr
 * hooks, like Cilium's socket LB). XDP sees only packets arriving from the
 * network, so a process on the node that connects to a LoadBalancer IP, an
 * external IP or a NodePort on a node address would otherwise never be
 * balanced. Here the destination is translated once per socket, before any
 * packet exists:
 *
 *   connect4/6   TCP and connected UDP: {dst, port, proto} in ph_frontends ->
 *                the socket is connected to a backend instead.
 *   sendmsg4/6   unconnected UDP: the same, per datagram.
 *   recvmsg4/6   UDP: a datagram from that backend is reported as coming
 *                from the service address (the application sees the VIP).
 *   getpeername4/6  the peer of a translated socket is the service address.
 *
 * The backend is chosen from the XDP object's own maps (opened from the same
 * pins): the frontend's Maglev table, which holds only backends that may take
 * new flows (draining ones are not in it), hashed over the socket cookie so
 * each socket lands independently but a socket's datagrams stay on one
 * backend. sessionAffinity keys on the network namespace instead of a client
 * address (ph_sock_aff). See "Node-local access" in README.md for what is
 * deliberately different from the XDP path.
 *
 * Every program returns 1 (allow) except connect/sendmsg to a frontend with
 * no usable backend, which fail with ECONNREFUSED as a refused TCP
 * connection would.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "lib/config.h"
#include "lib/maps.h"
#include "lib/maglev.h"
#include "lib/affinity.h"
#include "lib/sock_maps.h"

/*
 * Network namespace whose sockets are translated (its cookie, set by the
 * loader); 0 = every namespace. A cgroup holds processes of any network
 * namespace, but a service address means something only in the agent's:
 * by default the node's own processes are balanced, pods (other
 * namespaces) only with --socket-lb-all-namespaces, and two agents on one
 * host in separate namespaces (the lab) never translate each other's clients.
 */
const volatile __u64 cfg_sock_netns = 0;

#define PH_ECONNREFUSED 111

#define SYS_REJECT 0
#define SYS_PROCEED 1

enum sock_pick {
	PICK_BACKEND = 1,
	PICK_NO_BACKEND = 2,
};

/* The remembered backend of this network namespace, by the XDP path's rules (affinity.h), or 0. */
static __always_inline __u32 sock_affinity(const struct ph_sock_aff_key *ak, __u32 timeout_s, __u64 now)
{
	return affinity_usable(bpf_map_lookup_elem(&ph_sock_aff, ak), ak->frontend_id, timeout_s, now);
}

/**
 * sock_pick() - backend for a socket going to frontend @fe (@key).
 * @be_out: the backend (PICK_BACKEND only).
 * Returns: PICK_BACKEND, or PICK_NO_BACKEND when the frontend has no
 * usable backend.
 */
static __always_inline int sock_pick(struct bpf_sock_addr *ctx, const struct ph_fe_key *key,
				     const struct ph_fe_value *fe, __u64 cookie, struct ph_backend **be_out)
{
	struct ph_sock_aff_key ak = {};
	struct ph_flow flow = {};
	struct ph_backend *be;
	__u64 now = 0;
	__u32 be_id = 0;

	if (!fe->backends)
		return PICK_NO_BACKEND;
	if (fe->flags & PH_FE_AFFINITY) {
		now = bpf_ktime_get_coarse_ns();
		ak.netns_cookie = bpf_get_netns_cookie(ctx);
		ak.frontend_id = fe->id;
		be_id = sock_affinity(&ak, fe->affinity_timeout, now);
		if (be_id)
			sock_stat_inc(PH_SOCK_STAT_AFFINITY_HIT);
	}
	if (!be_id) {
		/* The flow hash of maglev.h with the socket cookie in place of the client address and port. */
		flow.src.w[0] = (__u32)cookie;
		flow.src.w[1] = (__u32)(cookie >> 32);
		flow.dst = key->addr;
		flow.dport = key->port;
		flow.proto = key->proto;
		flow.family = key->family;
		be_id = maglev_pick(fe, flow_hash(&flow));
	}
	be = be_id ? backend_get(be_id) : NULL;
	if (!be || be->family != key->family)
		return PICK_NO_BACKEND;
	if (fe->flags & PH_FE_AFFINITY) {
		struct ph_aff_value av = { .last_seen = now, .backend_id = be_id };

		bpf_map_update_elem(&ph_sock_aff, &ak, &av, BPF_ANY);
	}
	*be_out = be;
	return PICK_BACKEND;
}

/* Store a reverse entry; a UDP socket sending again to the same backend finds it in place (lookup, no write). */
static __always_inline void sock_rev_store(const struct ph_sock_rev_key *rk, const struct ph_sock_rev_value *rv)
{
	struct ph_sock_rev_value *old = bpf_map_lookup_elem(&ph_sock_rev, rk);

	if (old && old->addr.w[0] == rv->addr.w[0] && old->addr.w[1] == rv->addr.w[1] &&
	    old->addr.w[2] == rv->addr.w[2] && old->addr.w[3] == rv->addr.w[3] && old->port == rv->port &&
	    old->family == rv->family && old->frontend_id == rv->frontend_id)
		return;
	if (bpf_map_update_elem(&ph_sock_rev, rk, rv, BPF_ANY))
		sock_stat_inc(PH_SOCK_STAT_REV_FAIL);
}

static __always_inline int sock_refuse(void)
{
	sock_stat_inc(PH_SOCK_STAT_NO_BACKEND);
	bpf_set_retval(-PH_ECONNREFUSED);
	return SYS_REJECT;
}

/* connect4 / sendmsg4: {user_ip4, user_port, protocol} -> a backend. */
static __always_inline int sock4_xlate(struct bpf_sock_addr *ctx, __u32 stat)
{
	struct ph_sock_rev_value rv = {};
	struct ph_sock_rev_key rk = {};
	struct ph_fe_key key = {};
	struct ph_backend *be = NULL;
	struct ph_fe_value *fe;
	__u64 cookie;

	if (cfg_sock_netns && bpf_get_netns_cookie(ctx) != cfg_sock_netns)
		return SYS_PROCEED;
	key.addr.v4 = ctx->user_ip4;
	key.port = (__be16)ctx->user_port;
	key.proto = (__u8)ctx->protocol;
	key.family = PH_AF_INET;
	/* Most connects are not to a service: one lookup and out. */
	fe = bpf_map_lookup_elem(&ph_frontends, &key);
	if (!fe)
		return SYS_PROCEED;
	cookie = bpf_get_socket_cookie(ctx);
	if (sock_pick(ctx, &key, fe, cookie, &be) != PICK_BACKEND || !be)
		return sock_refuse();

	rk.cookie = cookie;
	rk.addr.v4 = be->addr.v4;
	rk.port = be->port;
	rk.family = PH_AF_INET;
	rv.addr = key.addr;
	rv.port = key.port;
	rv.family = PH_AF_INET;
	rv.frontend_id = fe->id;
	sock_rev_store(&rk, &rv);

	ctx->user_ip4 = be->addr.v4;
	ctx->user_port = (__u32)be->port;
	sock_stat_inc(stat);
	return SYS_PROCEED;
}

/* recvmsg4 / getpeername4: a translated peer is reported as the service address. */
static __always_inline int sock4_rev(struct bpf_sock_addr *ctx)
{
	struct ph_sock_rev_key rk = {};
	struct ph_sock_rev_value *rv;

	rk.cookie = bpf_get_socket_cookie(ctx);
	rk.addr.v4 = ctx->user_ip4;
	rk.port = (__be16)ctx->user_port;
	rk.family = PH_AF_INET;
	rv = bpf_map_lookup_elem(&ph_sock_rev, &rk);
	if (!rv || rv->family != PH_AF_INET)
		return SYS_PROCEED;
	ctx->user_ip4 = rv->addr.v4;
	ctx->user_port = (__u32)rv->port;
	sock_stat_inc(PH_SOCK_STAT_REV);
	return SYS_PROCEED;
}

/* ::ffff:a.b.c.d (an IPv4 peer of an IPv6 socket). */
static __always_inline int v4_mapped(const union ph_addr *a)
{
	return a->w[0] == 0 && a->w[1] == 0 && a->w[2] == bpf_htonl(0xffff);
}

static __always_inline void read_ip6(const struct bpf_sock_addr *ctx, union ph_addr *a)
{
	a->w[0] = ctx->user_ip6[0];
	a->w[1] = ctx->user_ip6[1];
	a->w[2] = ctx->user_ip6[2];
	a->w[3] = ctx->user_ip6[3];
}

static __always_inline void write_ip6(struct bpf_sock_addr *ctx, const union ph_addr *a)
{
	ctx->user_ip6[0] = a->w[0];
	ctx->user_ip6[1] = a->w[1];
	ctx->user_ip6[2] = a->w[2];
	ctx->user_ip6[3] = a->w[3];
}

/*
 * connect6 / sendmsg6. An IPv4-mapped destination on a dual-stack socket is
 * looked up as the IPv4 frontend and gets the IPv4 backend, mapped again.
 * (An unconnected UDP send to a mapped address reaches sendmsg4 instead, and
 * the kernel runs no recvmsg hook for IPv4 datagrams on an IPv6 socket, so
 * such replies show the backend: seen in test/datapath/sock-lab.test.ts.)
 */
static __always_inline int sock6_xlate(struct bpf_sock_addr *ctx, __u32 stat)
{
	struct ph_sock_rev_value rv = {};
	struct ph_sock_rev_key rk = {};
	struct ph_fe_key key = {};
	union ph_addr user = {};
	union ph_addr out = {};
	struct ph_backend *be = NULL;
	struct ph_fe_value *fe;
	__u64 cookie;
	int mapped;

	if (cfg_sock_netns && bpf_get_netns_cookie(ctx) != cfg_sock_netns)
		return SYS_PROCEED;
	read_ip6(ctx, &user);
	mapped = v4_mapped(&user);
	if (mapped) {
		key.addr.v4 = user.w[3];
		key.family = PH_AF_INET;
	} else {
		key.addr = user;
		key.family = PH_AF_INET6;
	}
	key.port = (__be16)ctx->user_port;
	key.proto = (__u8)ctx->protocol;
	fe = bpf_map_lookup_elem(&ph_frontends, &key);
	if (!fe)
		return SYS_PROCEED;
	cookie = bpf_get_socket_cookie(ctx);
	if (sock_pick(ctx, &key, fe, cookie, &be) != PICK_BACKEND || !be)
		return sock_refuse();

	if (mapped) {
		out.w[0] = 0;
		out.w[1] = 0;
		out.w[2] = bpf_htonl(0xffff);
		out.w[3] = be->addr.v4;
	} else {
		out = be->addr;
	}
	rk.cookie = cookie;
	rk.addr = out;
	rk.port = be->port;
	rk.family = PH_AF_INET6;
	rv.addr = user;
	rv.port = key.port;
	rv.family = PH_AF_INET6;
	rv.frontend_id = fe->id;
	sock_rev_store(&rk, &rv);

	write_ip6(ctx, &out);
	ctx->user_port = (__u32)be->port;
	sock_stat_inc(stat);
	return SYS_PROCEED;
}

static __always_inline int sock6_rev(struct bpf_sock_addr *ctx)
{
	struct ph_sock_rev_key rk = {};
	struct ph_sock_rev_value *rv;

	rk.cookie = bpf_get_socket_cookie(ctx);
	read_ip6(ctx, &rk.addr);
	rk.port = (__be16)ctx->user_port;
	rk.family = PH_AF_INET6;
	rv = bpf_map_lookup_elem(&ph_sock_rev, &rk);
	if (!rv || rv->family != PH_AF_INET6)
		return SYS_PROCEED;
	write_ip6(ctx, &rv->addr);
	ctx->user_port = (__u32)rv->port;
	sock_stat_inc(PH_SOCK_STAT_REV);
	return SYS_PROCEED;
}

SEC("cgroup/connect4")
int pharos_connect4(struct bpf_sock_addr *ctx)
{
	return sock4_xlate(ctx, PH_SOCK_STAT_CONNECT);
}

SEC("cgroup/sendmsg4")
int pharos_sendmsg4(struct bpf_sock_addr *ctx)
{
	return sock4_xlate(ctx, PH_SOCK_STAT_SENDMSG);
}

SEC("cgroup/recvmsg4")
int pharos_recvmsg4(struct bpf_sock_addr *ctx)
{
	return sock4_rev(ctx);
}

SEC("cgroup/getpeername4")
int pharos_getpeername4(struct bpf_sock_addr *ctx)
{
	return sock4_rev(ctx);
}

SEC("cgroup/connect6")
int pharos_connect6(struct bpf_sock_addr *ctx)
{
	return sock6_xlate(ctx, PH_SOCK_STAT_CONNECT);
}

SEC("cgroup/sendmsg6")
int pharos_sendmsg6(struct bpf_sock_addr *ctx)
{
	return sock6_xlate(ctx, PH_SOCK_STAT_SENDMSG);
}

SEC("cgroup/recvmsg6")
int pharos_recvmsg6(struct bpf_sock_addr *ctx)
{
	return sock6_rev(ctx);
}

SEC("cgroup/getpeername6")
int pharos_getpeername6(struct bpf_sock_addr *ctx)
{
	return sock6_rev(ctx);
}

char LICENSE[] SEC("license") = "GPL";
