// SPDX-License-Identifier: GPL-2.0
/*
 * pharos on a DSR backend host (the agent's `backend` role, and every node
 * in Kubernetes mode): tc ingress, in front of the LB program where both
 * run. The decision and its maps: lib/decap.h.
 */
#include "lib/decap.h"

SEC("tc")
int pharos_tc_decap(struct __sk_buff *skb)
{
	return decap(skb);
}

char LICENSE[] SEC("license") = "GPL";
