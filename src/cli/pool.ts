/** `pharos pool list`: NAME DISABLED CONFLICTING IPS AVAILABLE AGE, as `kubectl get ippools` shows them in the walkthroughs. */
import { CliError, EXIT, fetchState, parseCommon, printStructured, runCli } from './agent-client.js';
import { renderTable } from './table.js';
import { formatAge, POOL_LIST_COLUMNS } from '../ipam/pool-status.js';

export function run(argv: string[]): Promise<number> {
  return runCli(async () => {
    const opts = parseCommon(argv);
    if (opts.rest[0] !== 'list') throw new CliError('usage: pharos pool list [-o json|yaml] [--agent URL]', EXIT.usage);
    const s = await fetchState(opts.agent, ['pools']);
    if (printStructured(s.pools, opts.output)) return 0;
    const rows = [...s.pools]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((p) => [p.name, String(p.disabled), p.conflicting ? 'True' : 'False', p.available, formatAge(p.createdAt, new Date())]);
    console.log(renderTable([...POOL_LIST_COLUMNS], rows));
    return 0;
  });
}
