/**
 * `pharos bpf ct list [--filter TEXT] [--limit N]`: the data path's
 * conntrack table (client → VIP flows, their backend and SNAT port), like
 * `cilium bpf ct list global`. The filter keeps rows containing TEXT in any
 * column (an address, a port, "udp", "closing", ...).
 */
import { CliError, EXIT, fetchJson, parseCommon, printStructured, runCli } from './agent-client.js';
import { renderTable } from './table.js';
import type { ConntrackView } from '../metrics/state-view.js';

const USAGE = 'usage: pharos bpf ct list [--filter TEXT] [--limit N] [-o json|yaml] [--agent URL]';

export function run(argv: string[]): Promise<number> {
  return runCli(async () => {
    const opts = parseCommon(argv);
    const [what, verb, ...rest] = opts.rest;
    if (what !== 'ct' || verb !== 'list') throw new CliError(USAGE, EXIT.usage);
    let filter = '';
    let limit = 10_000;
    for (let i = 0; i < rest.length; i++) {
      const a = rest[i]!;
      if (a === '--filter') filter = rest[++i] ?? '';
      else if (a.startsWith('--filter=')) filter = a.slice(9);
      else if (a === '--limit' || a.startsWith('--limit=')) {
        limit = Number(a.includes('=') ? a.slice(8) : rest[++i]);
        if (!Number.isInteger(limit) || limit < 1) throw new CliError(`--limit: expected a positive integer`, EXIT.usage);
      } else throw new CliError(`unexpected argument "${a}"\n${USAGE}`, EXIT.usage);
    }
    const view = await fetchJson<ConntrackView>(opts.agent, `/v1/conntrack?limit=${limit}`);
    const needle = filter.toLowerCase();
    const entries = needle ? view.entries.filter((e) => Object.values(e).some((v) => String(v).toLowerCase().includes(needle))) : view.entries;
    if (printStructured({ ...view, entries }, opts.output)) return 0;
    console.log(renderTable(['PROTO', 'SOURCE', 'DESTINATION', 'BACKEND', 'SNAT', 'STATE', 'IDLE'],
      entries.map((e) => [e.protocol, e.source, e.destination, e.backend, e.snat || '-', e.state, `${Math.round(e.idleSeconds)}s`])));
    if (view.truncated) console.error(`(first ${view.entries.length} of ${view.total} entries: raise --limit to see more)`);
    return 0;
  });
}
