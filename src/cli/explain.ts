/**
 * `pharos explain service NAMESPACE/NAME`: everything this node knows about
 * one service, in the order a "my VIP is dead" question is answered —
 * its addresses and why, who announces them, whether this node's data path
 * carries it, what went wrong lately, and what to check next.
 *
 * One GET of `/v1/state?service=...` (the agent filters to the service, so
 * this costs the same at 10 services and 10,000); `explainService` is pure
 * and turns that view into findings and hints.
 */
import { CliError, EXIT, fetchJson, parseCommon, printStructured, runCli } from './agent-client.js';
import { formatAge } from './table.js';
import { STATE_API_VERSION, type AgentStateView, type FrontendView, type ServiceView } from '../metrics/state-view.js';

const USAGE = 'usage: pharos explain service NAMESPACE/NAME [-o json|yaml] [--agent URL]';

export interface Explanation {
  service: string;
  node: string;
  source: AgentStateView['source'];
  summary: string;
  addresses: string[];
  announced: string[];
  datapath: string[];
  problems: string[];
  next: string[];
  /** True when nothing stands between a client and the service as far as this node can see. */
  healthy: boolean;
}

export function run(argv: string[]): Promise<number> {
  return runCli(async () => {
    const opts = parseCommon(argv);
    const [what, key] = opts.rest;
    if (what === '--help' || what === '-h') {
      console.log(USAGE);
      return EXIT.ok;
    }
    if (what !== 'service' || !key || opts.rest.length !== 2) throw new CliError(USAGE, EXIT.usage);
    if (!/^[^/\s]+\/[^/\s]+$/.test(key)) throw new CliError(`"${key}" is not NAMESPACE/NAME\n${USAGE}`, EXIT.usage);
    const view = await fetchJson<AgentStateView>(opts.agent, `/v1/state?service=${encodeURIComponent(key)}`);
    if (view.apiVersion !== STATE_API_VERSION) throw new CliError(`agent at ${opts.agent} speaks ${String(view.apiVersion)}, this CLI ${STATE_API_VERSION}`, EXIT.failure);
    const svc = view.services.find((s) => s.key === key);
    if (!svc) throw new CliError(`service ${key} is not known to the agent on ${view.node} (kubectl get svc -n ${key.split('/')[0]}; in manifests mode: is it in the directory?)`, EXIT.failure);
    const explanation = explainService(view, svc, new Date());
    if (printStructured(explanation, opts.output)) return EXIT.ok;
    console.log(render(explanation));
    return EXIT.ok;
  });
}

function render(e: Explanation): string {
  const block = (title: string, lines: string[]): string[] => (lines.length ? ['', title, ...lines.map((l) => `  ${l}`)] : []);
  return [
    e.summary,
    ...block('Addresses', e.addresses),
    ...block('Announced', e.announced),
    ...block(`Data path on ${e.node}`, e.datapath),
    ...block('Problems', e.problems),
    ...block('Check next', e.next),
  ].join('\n');
}

function backendLine(b: FrontendView['backends'][number]): string {
  return `${b.address}:${b.port} (${b.state}${b.node ? `, node ${b.node}` : ''}${b.id ? '' : ', not in the backend map'})`;
}

/** The findings and hints for one service, from a one-service state view (pure). */
export function explainService(view: AgentStateView, svc: ServiceView, now: Date): Explanation {
  const key = svc.key;
  const [namespace, name] = key.split('/') as [string, string];
  const detail = svc.detail;
  const addresses: string[] = [];
  const announced: string[] = [];
  const datapath: string[] = [];
  const problems: string[] = [];
  const next: string[] = [];

  // 1. Addresses, and why.
  const ipam = svc.ipam;
  const pools = detail?.addressPools ?? {};
  for (const ip of svc.ingress) addresses.push(`${ip}  ${pools[ip] ? `from pool ${pools[ip]}` : ipam ? 'held' : 'not from pharos (no lb.pharos.io condition: another implementation or a status written by hand)'}`);
  for (const ip of svc.externalIPs) addresses.push(`${ip}  spec.externalIPs (not allocated by pharos)`);
  const asked: string[] = [];
  if (detail?.loadBalancerIP) asked.push(`spec.loadBalancerIP ${detail.loadBalancerIP}`);
  for (const [k, v] of Object.entries(detail?.annotations ?? {})) asked.push(`${k}: ${v}`);
  if (svc.loadBalancerClass) asked.push(`loadBalancerClass ${svc.loadBalancerClass}`);
  if (asked.length) addresses.push(`asked for: ${asked.join('; ')}`);
  if (ipam) addresses.push(`${ipam.status === 'True' ? 'IPAM' : 'IPAM problem'}: ${ipam.reason}: ${ipam.message}`);
  if (svc.type !== 'LoadBalancer' && svc.externalIPs.length === 0) addresses.push(`type ${svc.type}: pharos gives addresses to type LoadBalancer only`);
  if (svc.type === 'LoadBalancer' && svc.ingress.length === 0) {
    addresses.push('no address');
    if (!ipam) next.push(`no lb.pharos.io condition: pharos does not consider the service its own (loadBalancerClass ${svc.loadBalancerClass ?? 'unset'}; see --default-lb-class in pharos config view)`);
    else if (ipam.reason === 'no_pool' || ipam.reason === 'pool_selector_mismatch') next.push("no pool hands this service an address: pharos pool list, and each pool's spec.serviceSelector against the service's labels");
    else if (ipam.reason === 'out_of_ips') next.push('the pools that select it are full: pharos pool list (IPS AVAILABLE); add a block or free addresses');
    else next.push(`the request cannot be met as written (${ipam.reason}): fix the field the message names`);
  }

  // 2. Who announces each address.
  const l2 = view.l2.filter((r) => r.service === key);
  for (const r of l2) {
    const who = r.holder ? (r.holder === view.node ? `${r.holder} (this node)` : r.holder) : 'no node';
    const since = r.since ? `, since ${formatAge(r.since, now)}` : '';
    announced.push(`L2 ${r.address}: answered by ${who}${r.interfaces.length ? ` on ${r.interfaces.join(',')}` : ''}${since}, ${r.transitions} transitions${r.state ? `, ${r.state}` : ''}`);
    if (!r.holder) next.push(`${r.address} has no L2 holder: kubectl -n <agents' namespace> get lease pharos-l2announce-${r.address.replace(/[.:]/g, '-')}; is any node eligible (the policy's nodeSelector and interfaces)?`);
    else if (r.holder !== view.node) next.push(`${r.address} is answered by ${r.holder}: ask its agent (pharos explain service ${key} --agent http://<${r.holder}>:9643)`);
    if (r.state?.startsWith('fenced')) problems.push(`L2 ${r.address}: ${r.state}`);
    if (r.duplicate) {
      problems.push(`L2 ${r.address}: another MAC (${r.duplicate.mac}) answered it ${formatAge(r.duplicate.at, now)} ago (${r.duplicate.count} times)`);
      next.push(`another machine answers ${r.address} (${r.duplicate.mac}): another load balancer (MetalLB, kube-vip, Cilium), a static address, or a split brain — arping -D ${r.address} from the segment`);
    }
  }
  const routes = view.bgp.routes.filter((r) => r.service === key);
  for (const r of routes) announced.push(`BGP ${r.prefix} next hop ${r.nextHop}: advertised to ${r.peers.length ? r.peers.join(', ') : 'no peer (none established)'}${r.communities.length ? `, communities ${r.communities.join(' ')}` : ''}`);
  if (routes.length && routes.every((r) => r.peers.length === 0)) next.push('no BGP session carries its routes: pharos bgp peers');
  if (svc.ingress.length && l2.length === 0 && routes.length === 0) {
    announced.push('not announced by this node (no L2 answer, no BGP route)');
    next.push(svc.datapath && !svc.datapath.programmed
      ? 'not announced because this node cannot carry it (below)'
      : 'no L2AnnouncementPolicy or BGPPeeringPolicy here selects it (serviceSelector, nodeSelector, interfaces, loadBalancerIPs/externalIPs), or another node does it');
  }

  // 3. This node's data path.
  const frontends = view.frontends.filter((f) => f.service === key);
  for (const f of frontends) {
    const active = f.backends.filter((b) => b.state === 'active').length;
    datapath.push(`${f.address}:${f.port}/${f.protocol} (${f.kind})  ${f.programmed ? `id ${f.id}` : `NOT IN THE DATA PATH: ${f.problem ?? '?'}`}  ${active} active of ${f.backends.length} backends`);
    for (const b of f.backends.slice(0, 8)) datapath.push(`  ${backendLine(b)}`);
    if (f.backends.length > 8) datapath.push(`  ... ${f.backends.length - 8} more (pharos service list -o json)`);
    if (f.programmed && active === 0) {
      next.push(`${f.address}:${f.port}/${f.protocol} has no ready backend: kubectl -n ${namespace} get endpointslices -l kubernetes.io/service-name=${name}`);
    }
  }
  if (svc.datapath && !svc.datapath.programmed) {
    problems.push(`not fully in this node's data path (${svc.datapath.programmedFrontends} of ${svc.datapath.frontends} frontends): ${svc.datapath.reason ?? ''} ${svc.datapath.message ?? ''}`.trim());
    next.push(svc.datapath.reason === 'DsrBackendNotOnLink'
      ? 'a DSR backend is behind a router and lb.pharos.io/dsr-dispatch is l2: set it to auto or ipip (the backend decapsulates), put the backend on a segment of this node, or use lb.pharos.io/forwarding-mode: snat'
      : 'pharos status (NOT IN THE DATA PATH) and pharos_bpf_map_full_total: a map may need a larger --*-map-size');
  }
  if (frontends.length === 0 && svc.ingress.length > 0) datapath.push('no frontend here (no ready endpoints, or externalTrafficPolicy Local with none on this node)');
  if (detail?.externalTrafficPolicy === 'Local') datapath.push('externalTrafficPolicy Local: only nodes with a ready endpoint carry it, and the client address is kept');
  if (detail?.loadBalancerSourceRanges.length) datapath.push(`only clients from ${detail.loadBalancerSourceRanges.join(', ')} (loadBalancerSourceRanges)`);

  // 4. Conditions and the node's own health.
  for (const c of detail?.conditions ?? []) {
    if (c.status !== 'True' && !(ipam && c.reason === ipam.reason && c.message === ipam.message)) problems.push(`condition ${c.type}=${c.status}: ${c.reason}: ${c.message}`);
  }
  for (const [what, r] of Object.entries(view.readiness)) {
    if (!r.ok) {
      problems.push(`this node is not ready (${what}): ${r.detail}`);
      next.push('pharos status: a node that is not ready withdraws what it announces');
    }
  }
  const drain = view.summary.drain;
  if (drain) {
    const bgp = drain.bgp ? `; BGP: ${drain.bgp.phase === 'shutdown' ? `routes sent with GRACEFUL_SHUTDOWN, withdrawn at ${drain.bgp.withdrawAt}` : 'routes withdrawn'}` : '';
    problems.push(`this node is draining (${drain.description}): its L2 addresses go to other nodes${bgp}`);
    next.push(drain.reason === 'label'
      ? `maintenance over? kubectl label node ${view.node} lb.pharos.io/drain- (nothing moves back: addresses stay where they went)`
      : `maintenance over? kubectl uncordon ${view.node} (nothing moves back: addresses stay where they went)`);
  }
  const poolNames = new Set(Object.values(pools));
  for (const p of view.problems) {
    if (p.object.includes(key) || [...poolNames].some((n) => p.object.endsWith(` ${n}`) || p.object === n)) problems.push(`${p.object}${p.field ? ` ${p.field}` : ''}: ${p.message}`);
  }

  const served = svc.ingress.length > 0 && (svc.datapath?.programmed ?? frontends.length > 0) && (l2.some((r) => r.holder) || routes.some((r) => r.peers.length > 0));
  const healthy = served && problems.length === 0;
  if (healthy && next.length === 0) next.push('nothing wrong seen from this node; from the client: arping / traceroute to the address, then curl');
  const ports = svc.ports.join(', ') || 'no ports';
  return {
    service: key, node: view.node, source: view.source,
    summary: `${key}: ${svc.type}, ${ports}; as the agent on ${view.node} (${view.source} mode) sees it: ${healthy ? 'served' : served ? 'served, with problems' : 'NOT SERVED'}`,
    addresses, announced, datapath, problems, next: [...new Set(next)], healthy,
  };
}
