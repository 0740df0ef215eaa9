// SPDX-License-Identifier: GPL-2.0
/*
 * The pharos data path built for tc ingress (clsact, direct action): the
 * same source as lb.bpf.c, through the context layer in lib/ctx.h. Entry
 * points pharos_tc_ingress, pharos_tc_new_flow and pharos_tc_control take
 * the places of pharos_xdp, pharos_xdp_new_flow and pharos_xdp_control;
 * pharos_tc_egress is the same program in both objects.
 */
#define PH_TC_INGRESS 1
#include "lb.bpf.c"
