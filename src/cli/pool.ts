/** `pharos pool list`: NAME DISABLED CONFLICTING IPS AVAILABLE AGE, as `kubectl get ippools` shows them in the walkthroughs. */
import { fetchState, runView } from './agent-client.js';
import { formatAge, renderTable } from './table.js';
import type { PoolView } from '../metrics/state-view.js';

/** The columns of `pharos pool list`, as `kubectl get ciliumloadbalancerippools` prints them in the walkthroughs. */
export const POOL_LIST_COLUMNS = ['NAME', 'DISABLED', 'CONFLICTING', 'IPS AVAILABLE', 'AGE'] as const;

/** One row of `pharos pool list`, in POOL_LIST_COLUMNS order. */
export function poolListRow(p: Pick<PoolView, 'name' | 'disabled' | 'conflicting' | 'available' | 'createdAt'>, now: Date): string[] {
  return [p.name, String(p.disabled), p.conflicting ? 'True' : 'False', p.available, formatAge(p.createdAt, now)];
}

export function run(argv: string[]): Promise<number> {
  return runView(argv, {
    usage: 'pharos pool list', verb: 'list',
    fetch: async (agent) => (await fetchState(agent, ['pools'])).pools,
    render: (pools) => renderTable([...POOL_LIST_COLUMNS], [...pools]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((p) => poolListRow(p, new Date()))),
  });
}
