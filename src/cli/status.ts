/** `pharos status`: is the agent ready, what is attached, what is it serving. */
import { fetchState, parseCommon, printStructured, runCli } from './agent-client.js';

export function run(argv: string[]): Promise<number> {
  return runCli(async () => {
    const opts = parseCommon(argv);
    const s = await fetchState(opts.agent);
    if (printStructured({ node: s.node, ready: s.ready, readiness: s.readiness, source: s.source, datapath: s.datapath, startedAt: s.startedAt }, opts.output)) return s.ready ? 0 : 1;
    const lines = [
      `Node:        ${s.node}`,
      `Version:     ${s.version}`,
      `Source:      ${s.source}`,
      `Ready:       ${s.ready ? 'yes' : 'no'}`,
      ...Object.entries(s.readiness).map(([k, v]) => `  ${v.ok ? 'OK ' : 'NO '} ${k}: ${v.detail}`),
      `Data path:   ${s.datapath.mode}, maps pinned at ${s.datapath.pinDir}`,
      ...s.datapath.attachments.map((a) => `  XDP on ${a.interface} (ifindex ${a.ifindex}, ${a.mode})`),
      ...(s.datapath.socketLb ? [`  socket LB on cgroup ${s.datapath.socketLb.cgroup} (${s.datapath.socketLb.hooks.length} hooks, ${s.datapath.socketLb.counters.connect ?? 0} connects, ${s.datapath.socketLb.counters.sendmsg ?? 0} datagrams translated)`] : []),
      `Services:    ${s.services.length} (${s.frontends.length} frontends)`,
      `Pools:       ${s.pools.length}${s.pools.some((p) => p.conflicting) ? ' (some conflicting!)' : ''}`,
      `L2:          ${s.l2.filter((l) => l.local).length} addresses announced here, ${s.l2.length} known`,
      `BGP peers:   ${s.bgp.peers.length} (${s.bgp.peers.filter((p) => p.state === 'Established').length} established)`,
      ...(s.problems.length ? [`Problems:    ${s.problems.length}`, ...s.problems.map((p) => `  ${p.object}${p.field ? ` ${p.field}` : ''}: ${p.message}`)] : []),
    ];
    console.log(lines.join('\n'));
    return s.ready ? 0 : 1;
  });
}
