/** `pharos config view`: the running agent's effective configuration. */
import { fetchState, runView } from './agent-client.js';
import { renderTable } from './table.js';

export function run(argv: string[]): Promise<number> {
  return runView(argv, {
    usage: 'pharos config view', verb: 'view',
    fetch: async (agent) => (await fetchState(agent, ['config'])).config,
    render: (config) => renderTable(['KEY', 'VALUE'], Object.entries(config)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : v === undefined ? '' : String(v)])),
  });
}
