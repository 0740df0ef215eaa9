/** `pharos config view`: the running agent's effective configuration. */
import { CliError, EXIT, fetchState, parseCommon, printStructured, runCli } from './agent-client.js';
import { renderTable } from './table.js';

export function run(argv: string[]): Promise<number> {
  return runCli(async () => {
    const opts = parseCommon(argv);
    if (opts.rest[0] !== 'view') throw new CliError('usage: pharos config view [-o json|yaml] [--agent URL]', EXIT.usage);
    const s = await fetchState(opts.agent, ['config']);
    if (printStructured(s.config, opts.output)) return 0;
    const rows = Object.entries(s.config)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : v === undefined ? '' : String(v)]);
    console.log(renderTable(['KEY', 'VALUE'], rows));
    return 0;
  });
}
