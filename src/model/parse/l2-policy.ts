/**
 * L2AnnouncementPolicy (pharos) and CiliumL2AnnouncementPolicy: service and
 * node selectors, interfaces, which addresses to announce.
 */
import { type Context, readMeta, readSelector } from './common.js';
import { show } from '../field-reader.js';
import type { L2Policy } from '../types.js';

export function parseL2PolicyObject(ctx: Context): L2Policy {
  const meta = readMeta(ctx, 'cluster');
  const spec = ctx.root.get('spec');
  spec.object();
  if (ctx.flavor === 'pharos') {
    spec.onlyKeys(['serviceSelector', 'nodeSelector', 'interfaces', 'loadBalancerIPs', 'externalIPs']);
  }
  const interfaces = spec.get('interfaces').items((r) => {
    const pattern = r.string();
    try {
      new RegExp(pattern);
    } catch (err) {
      r.report(`${show(pattern)} is not a valid regular expression: ${(err as Error).message}`);
    }
    return pattern;
  });
  // Cilium's booleans default to false; pharos announces load-balancer IPs unless told not to,
  // because a policy that announces nothing is never what a user meant.
  const policy: L2Policy = {
    kind: 'L2AnnouncementPolicy',
    meta,
    flavor: ctx.flavor,
    interfaces,
    loadBalancerIPs: spec.recover(() => spec.get('loadBalancerIPs').boolean(ctx.flavor === 'pharos'), ctx.flavor === 'pharos'),
    externalIPs: spec.recover(() => spec.get('externalIPs').boolean(false), false),
  };
  if (!policy.loadBalancerIPs && !policy.externalIPs) {
    ctx.warn('announces nothing: neither spec.loadBalancerIPs nor spec.externalIPs is true');
  }
  const serviceSelector = spec.recover(() => readSelector(spec.get('serviceSelector')), undefined);
  if (serviceSelector) policy.serviceSelector = serviceSelector;
  const nodeSelector = spec.recover(() => readSelector(spec.get('nodeSelector')), undefined);
  if (nodeSelector) policy.nodeSelector = nodeSelector;
  return policy;
}
