/** `pharos pool list`: NAME DISABLED CONFLICTING IPS AVAILABLE AGE, as `kubectl get ippools` shows them in the walkthroughs. */
import { CliError, EXIT, fetchState, parseCommon, printStructured, runCli } from './agent-client.js';
import { formatAge, renderTable } from './table.js';
import type { PoolView } from '../metrics/state-view.js';

/** The columns of `pharos pool list`, as `kubectl get ciliumloadbalancerippools` prints them in the walkthroughs. */
export const POOL_LIST_COLUMNS = ['NAME', 'DISABLED', 'CONFLICTING', 'IPS AVAILABLE', 'AGE'] as const;

/** One row of `pharos pool list`, in POOL_LIST_COLUMNS order. */
export function poolListRow(p: Pick<PoolView, 'name' | 'disabled' | 'conflicting' | 'available' | 'createdAt'>, now: Date): string[] {
  return [p.name, String(p.disabled), p.conflicting ? 'True' : 'False', p.available, formatAge(p.createdAt, now)];
}

export function run(argv: string[]): Promise<number> {
  return runCli(async () => {
    const opts = parseCommon(argv);
    if (opts.rest[0] !== 'list') throw new CliError('usage: pharos pool list [-o json|yaml] [--agent URL]', EXIT.usage);
    const s = await fetchState(opts.agent, ['pools']);
    if (printStructured(s.pools, opts.output)) return 0;
    const rows = [...s.pools]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((p) => poolListRow(p, new Date()));
    console.log(renderTable([...POOL_LIST_COLUMNS], rows));
    return 0;
  });
}
