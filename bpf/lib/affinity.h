/* SPDX-License-Identifier: GPL-2.0 */
/*
 * sessionAffinity ClientIP: a new flow of a client that opened one on the
 * same frontend within the timeout goes to the same backend, while that
 * backend exists, is still one of the frontend's active backends
 * (ph_fe_members) and is not draining; otherwise Maglev places it and the
 * choice is remembered. The timeout runs from the client's last new flow
 * (kube-proxy's `recent` match behaves the same way).
 */
#ifndef PHAROS_AFFINITY_H
#define PHAROS_AFFINITY_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "lib/maps.h"

/* Fill @s->ak for the client of @p on frontend @fe_id. */
static __always_inline void affinity_key(struct ph_scratch *s, __u32 fe_id, const struct ph_flow *f)
{
	s->ak.frontend_id = fe_id;
	s->ak.family = f->family;
	s->ak.client = f->src;
}

/**
 * affinity_usable() - the backend remembered in @a (may be NULL) if it may
 * still take the client's new flows to frontend @frontend_id: remembered
 * within @timeout_s, alive, not draining, still a member of the frontend.
 * Shared with the socket hooks (sock.bpf.c), which remember per namespace.
 * Returns: its id, or 0.
 */
static __always_inline __u32 affinity_usable(const struct ph_aff_value *a, __u32 frontend_id, __u32 timeout_s, __u64 now)
{
	struct ph_member_key mk;
	struct ph_backend *be;

	if (!a || now - a->last_seen > (__u64)timeout_s * 1000000000ULL)
		return 0;
	be = backend_get(a->backend_id);
	if (!be || (be->flags & PH_BE_DRAINING))
		return 0;
	mk.frontend_id = frontend_id;
	mk.backend_id = a->backend_id;
	return bpf_map_lookup_elem(&ph_fe_members, &mk) ? a->backend_id : 0;
}

/* The remembered backend of the client in @s->ak, or 0 (see affinity_usable). */
static __always_inline __u32 affinity_backend(struct ph_scratch *s, __u32 timeout_s, __u64 now)
{
	return affinity_usable(bpf_map_lookup_elem(&ph_affinity, &s->ak), s->ak.frontend_id, timeout_s, now);
}

static __always_inline void affinity_remember(struct ph_scratch *s, __u32 be_id, __u64 now)
{
	s->av.last_seen = now;
	s->av.backend_id = be_id;
	bpf_map_update_elem(&ph_affinity, &s->ak, &s->av, BPF_ANY);
}

#endif
