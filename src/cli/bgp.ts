/** `pharos bgp peers` and `pharos bgp routes`. */
import { CliError, EXIT, fetchState, parseCommon, printStructured, runCli } from './agent-client.js';
import { renderTable } from './table.js';
import type { BgpPeerBfdView } from '../metrics/state-view.js';

function uptime(seconds: number): string {
  if (seconds <= 0) return '-';
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = Math.floor(seconds % 60);
  return h ? `${h}h${m}m${s}s` : m ? `${m}m${s}s` : `${s}s`;
}

/** `Up 300ms, detect 900ms`, `Down (Control Detection Time Expired)`, or `-` without BFD. */
function bfdColumn(bfd: BgpPeerBfdView | undefined): string {
  if (!bfd) return '-';
  if (bfd.error) return `${bfd.state} (${bfd.error})`;
  if (bfd.state === 'Up') return `Up ${bfd.txIntervalMs}ms, detect ${bfd.detectionTimeMs}ms`;
  return bfd.diagnostic === 'No Diagnostic' ? bfd.state : `${bfd.state} (${bfd.diagnostic})`;
}

export function run(argv: string[]): Promise<number> {
  return runCli(async () => {
    const opts = parseCommon(argv);
    const verb = opts.rest[0];
    if (verb !== 'peers' && verb !== 'routes') throw new CliError('usage: pharos bgp peers|routes [-o json|yaml] [--agent URL]', EXIT.usage);
    const s = await fetchState(opts.agent, ['bgp']);
    if (verb === 'peers') {
      if (printStructured(s.bgp.peers, opts.output)) return 0;
      console.log(renderTable(['PEER', 'LOCAL ASN', 'PEER ASN', 'STATE', 'UPTIME', 'SENT', 'RECEIVED', 'BFD', 'LAST ERROR'],
        s.bgp.peers.map((p) => [p.peer, String(p.localAsn), String(p.asn), p.state, uptime(p.uptimeSeconds), String(p.prefixesSent), String(p.prefixesReceived), bfdColumn(p.bfd), p.lastError ?? ''])));
    } else {
      if (printStructured(s.bgp.routes, opts.output)) return 0;
      console.log(renderTable(['PREFIX', 'NEXT HOP', 'PEERS', 'SERVICE', 'COMMUNITIES'],
        s.bgp.routes.map((r) => [r.prefix, r.nextHop, r.peers.join(','), r.service ?? '', r.communities.join(' ')])));
    }
    return 0;
  });
}
