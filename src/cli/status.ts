/** `pharos status`: is the agent ready, what is attached, what is it serving. */
import { fetchState, parseCommon, printStructured, runCli } from './agent-client.js';

export function run(argv: string[]): Promise<number> {
  return runCli(async () => {
    const opts = parseCommon(argv);
    const s = await fetchState(opts.agent, ['pools', 'bgp', 'problems']);
    if (printStructured({
      node: s.node, ready: s.ready, readiness: s.readiness, source: s.source, datapath: s.datapath, startedAt: s.startedAt, summary: s.summary, notProgrammed: s.notProgrammed,
    }, opts.output)) return s.ready ? 0 : 1;
    const sum = s.summary;
    const lines = [
      `Node:        ${s.node}`,
      `Version:     ${s.version}`,
      `Source:      ${s.source}`,
      `Ready:       ${s.ready ? 'yes' : 'no'}`,
      ...Object.entries(s.readiness).map(([k, v]) => `  ${v.ok ? 'OK ' : 'NO '} ${k}: ${v.detail}`),
      `Data path:   ${s.datapath.mode}, maps pinned at ${s.datapath.pinDir}`,
      ...s.datapath.attachments.map((a) => {
        const h = s.datapath.health?.interfaces.find((i) => i.interface === a.interface);
        const state = h && !h.ok ? ` — NOT IN PLACE: ${h.problem}` : '';
        const again = h?.reattached ? `; attached again ${h.reattached}×` : '';
        return `  ${a.mode === 'tc' ? 'tc ingress' : 'XDP'} on ${a.interface} (ifindex ${a.ifindex}, ${a.mode}${a.reason ? `: ${a.reason}` : ''}${again})${state}`;
      }),
      ...(s.datapath.health?.pins ?? []).map((p) => `  PIN: ${p}`),
      ...(s.datapath.socketLb ? [`  socket LB on cgroup ${s.datapath.socketLb.cgroup} (${s.datapath.socketLb.hooks.length} hooks, ${s.datapath.socketLb.counters.connect ?? 0} connects, ${s.datapath.socketLb.counters.sendmsg ?? 0} datagrams translated)`] : []),
      `Services:    ${sum.services} (${sum.frontends} frontends, ${sum.frontendsProgrammed} in the data path; ${sum.backends} backends)`,
      ...(sum.servicesNotProgrammed ? [
        `  NOT IN THE DATA PATH: ${sum.servicesNotProgrammed} services (not announced nor advertised from here)`,
        ...s.notProgrammed.slice(0, 10).map((n) => `    ${n.service}: ${n.programmed}/${n.frontends} frontends, ${n.reason}: ${n.message}`),
        ...(sum.servicesNotProgrammed > 10 ? [`    ... and ${sum.servicesNotProgrammed - 10} more (pharos service list)`] : []),
      ] : []),
      `Pools:       ${s.pools.length}${s.pools.some((p) => p.conflicting) ? ' (some conflicting!)' : ''}`,
      ...(sum.drain ? [`Drain:       DRAINING, ${sum.drain.description}: L2 addresses handed to other nodes${sum.drain.bgp ? `; BGP ${sum.drain.bgp.phase === 'shutdown' ? `routes sent with GRACEFUL_SHUTDOWN, withdrawn at ${sum.drain.bgp.withdrawAt}` : `routes withdrawn (${sum.drain.bgp.withdrawAt})`}` : ''}`] : []),
      `L2:          ${sum.l2.announced} addresses announced here${sum.l2.refused ? `, ${sum.l2.refused} NOT ANNOUNCED (responder map full)` : ''}${sum.l2.pendingFirstAnnouncement ? `, ${sum.l2.pendingFirstAnnouncement} waiting for their first announcement` : ''}`,
      ...l2OutageLines(sum.l2.outage),
      `BGP peers:   ${s.bgp.peers.length} (${s.bgp.peers.filter((p) => p.state === 'Established').length} established)`,
      ...(s.problems.length ? [`Problems:    ${s.problems.length}`, ...s.problems.map((p) => `  ${p.object}${p.field ? ` ${p.field}` : ''}: ${p.message}`)] : []),
    ];
    console.log(lines.join('\n'));
    return s.ready ? 0 : 1;
  });
}

/** API reachability as L2 sees it, fences and duplicate answers (Kubernetes mode). */
function l2OutageLines(o: Awaited<ReturnType<typeof fetchState>>['summary']['l2']['outage']): string[] {
  if (!o) return [];
  return [
    ...(o.apiReachable ? [] : [`  API UNREACHABLE since ${o.apiUnreachableSince ?? '?'}: ${o.unconfirmed} addresses answered without it; peers heard: ${o.livePeers.join(', ') || 'none'}`]),
    ...o.fenced.map((f) => `  FENCED ${f.address} since ${f.since}: ${f.reason}`),
    ...o.duplicates.map((d) => `  DUPLICATE ANSWER for ${d.address} from ${d.mac} (${d.count} seen, last ${d.at})`),
  ];
}
