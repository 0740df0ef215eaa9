/** `pharos service list`: one row per frontend, like `cilium service list`. */
import { CliError, EXIT, fetchList, parseCommon, printStructured, runCli } from './agent-client.js';
import { renderTable } from './table.js';
import type { FrontendView } from '../metrics/state-view.js';
import { formatEndpoint } from '../model/cidr.js';


/** Rows as `cilium service list` prints them; a frontend the data path could not take has no ID and says why. */
export function serviceRows(frontends: FrontendView[]): string[][][] {
  return [...frontends]
    .sort((a, b) => (a.id || Number.MAX_SAFE_INTEGER) - (b.id || Number.MAX_SAFE_INTEGER))
    .map((f) => {
      const backends = f.backends.map((b, i) => `${i + 1} => ${formatEndpoint(b.address, b.port)} (${b.state})`);
      const notProgrammed = f.programmed === false ? [`NOT IN THE DATA PATH: ${f.problem ?? 'not programmed'}`] : [];
      return [
        [f.programmed === false ? '-' : String(f.id)],
        [`${formatEndpoint(f.address, f.port)}/${f.protocol}`],
        [f.service],
        [f.kind],
        [...notProgrammed, ...backends].length ? [...notProgrammed, ...backends] : [''],
      ];
    });
}

export function run(argv: string[]): Promise<number> {
  return runCli(async () => {
    const opts = parseCommon(argv);
    const [verb] = opts.rest;
    if (verb !== 'list') throw new CliError('usage: pharos service list [-o json|yaml] [--agent URL]', EXIT.usage);
    const frontends = await fetchList(opts.agent, 'frontends');
    if (printStructured(frontends, opts.output)) return 0;
    console.log(renderTable(['ID', 'FRONTEND', 'SERVICE', 'TYPE', 'BACKEND'], serviceRows(frontends)));
    return 0;
  });
}
