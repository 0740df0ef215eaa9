/** `pharos service list`: one row per frontend, like `cilium service list`. */
import { CliError, EXIT, fetchState, parseCommon, printStructured, runCli } from './agent-client.js';
import { renderTable } from './table.js';
import type { FrontendView } from '../metrics/state-view.js';
import { formatEndpoint } from '../model/cidr.js';


export function serviceRows(frontends: FrontendView[]): string[][][] {
  return [...frontends]
    .sort((a, b) => a.id - b.id)
    .map((f) => [
      [String(f.id)],
      [`${formatEndpoint(f.address, f.port)}/${f.protocol}`],
      [f.service],
      [f.kind],
      f.backends.length ? f.backends.map((b, i) => `${i + 1} => ${formatEndpoint(b.address, b.port)} (${b.state})`) : [''],
    ]);
}

export function run(argv: string[]): Promise<number> {
  return runCli(async () => {
    const opts = parseCommon(argv);
    const [verb] = opts.rest;
    if (verb !== 'list') throw new CliError('usage: pharos service list [-o json|yaml] [--agent URL]', EXIT.usage);
    const s = await fetchState(opts.agent);
    if (printStructured(s.frontends, opts.output)) return 0;
    console.log(renderTable(['ID', 'FRONTEND', 'SERVICE', 'TYPE', 'BACKEND'], serviceRows(s.frontends)));
    return 0;
  });
}
