/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Values fixed for the lifetime of one loaded program, set by the loader in
 * .rodata before load (src/datapath/loader.ts). Names, sizes and initial
 * values are mirrored by RODATA / RODATA_DEFAULTS in src/datapath/abi.ts
 * (test/datapath/abi.test.ts compares them), and the initial values are the
 * loader's and the agent's defaults. The
 * verifier sees them as constants, so disabled branches cost nothing.
 * Everything the agent may change without a reload lives in maps (maps.h).
 */
#ifndef PHAROS_CONFIG_H
#define PHAROS_CONFIG_H

#include <linux/types.h>

/*
 * Seed of the flow hash; equal on every LB node so they all pick the same
 * backend. The default is the agent's --hash-seed default ("PHAR").
 */
const volatile __u32 cfg_hash_seed = 0x50484152;
/* ARP/NDP answers stop when the agent's liveness stamp is older than this. */
const volatile __u64 cfg_liveness_max_ns = 3000000000ULL;
/* Conntrack idle timeouts. */
const volatile __u64 cfg_tcp_est_ns = 3600ULL * 1000000000ULL;
const volatile __u64 cfg_tcp_transient_ns = 30ULL * 1000000000ULL;
const volatile __u64 cfg_udp_ns = 60ULL * 1000000000ULL;
/* A cached FIB result (egress ifindex + MACs) is re-checked after this age, so route and neighbour changes are picked up. */
const volatile __u64 cfg_fib_refresh_ns = 1000000000ULL;
/* 1 = SNAT to the node address (default), 0 = DNAT only (client address kept; backends must route replies back through us). */
const volatile __u8 cfg_snat = 1;

#endif
