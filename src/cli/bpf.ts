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
    let limit = 1000;
    for (let i = 0; i < rest.length; i++) {
      const a = rest[i]!;
      if (a === '--filter') filter = rest[++i] ?? '';
      else if (a.startsWith('--filter=')) filter = a.slice(9);
      else if (a === '--limit' || a.startsWith('--limit=')) {
        limit = Number(a.includes('=') ? a.slice(8) : rest[++i]);
        if (!Number.isInteger(limit) || limit < 1) throw new CliError(`--limit: expected a positive integer`, EXIT.usage);
      } else throw new CliError(`unexpected argument "${a}"\n${USAGE}`, EXIT.usage);
    }
    // Pages of at most 10,000 (the agent's bound) until `limit` rows match or the table ends.
    const needle = filter.toLowerCase();
    const entries: ConntrackView['entries'] = [];
    let view: ConntrackView | undefined;
    let token: string | undefined;
    do {
      const page = Math.min(10_000, Math.max(limit - entries.length, 100));
      view = await fetchJson<ConntrackView>(opts.agent, `/v1/conntrack?limit=${page}${token ? `&continue=${encodeURIComponent(token)}` : ''}`);
      for (const e of view.entries) {
        if (entries.length >= limit) break;
        if (!needle || Object.values(e).some((v) => String(v).toLowerCase().includes(needle))) entries.push(e);
      }
      token = view.continue;
    } while (token && entries.length < limit);
    const truncated = Boolean(token);
    if (printStructured({ entries, truncated, total: view.total }, opts.output)) return 0;
    console.log(renderTable(['PROTO', 'SOURCE', 'DESTINATION', 'BACKEND', 'SNAT', 'STATE', 'IDLE'],
      entries.map((e) => [e.protocol, e.source, e.destination, e.backend, e.snat || '-', e.state, `${Math.round(e.idleSeconds)}s`])));
    if (truncated) console.error(`(first ${entries.length}${needle ? ' matching' : ''} of about ${view.total} entries: raise --limit to see more)`);
    return 0;
  });
}
