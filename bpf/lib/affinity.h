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
 * affinity_backend() - the remembered backend of the client in @s->ak.
 * Returns: its id, or 0 when none is remembered, it expired, or it can no
 * longer take new flows.
 */
static __always_inline __u32 affinity_backend(struct ph_scratch *s, __u32 timeout_s, __u64 now)
{
	struct ph_aff_value *a = bpf_map_lookup_elem(&ph_affinity, &s->ak);
	struct ph_member_key mk;
	struct ph_backend *be;

	if (!a || now - a->last_seen > (__u64)timeout_s * 1000000000ULL)
		return 0;
	be = backend_get(a->backend_id);
	if (!be || (be->flags & PH_BE_DRAINING))
		return 0;
	mk.frontend_id = s->ak.frontend_id;
	mk.backend_id = a->backend_id;
	if (!bpf_map_lookup_elem(&ph_fe_members, &mk))
		return 0;
	return a->backend_id;
}

static __always_inline void affinity_remember(struct ph_scratch *s, __u32 be_id, __u64 now)
{
	s->av.last_seen = now;
	s->av.backend_id = be_id;
	bpf_map_update_elem(&ph_affinity, &s->ak, &s->av, BPF_ANY);
}

#endif
