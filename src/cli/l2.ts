/** `pharos l2 list`: which node answers ARP/NDP for which address. */
import { CliError, EXIT, fetchList, parseCommon, printStructured, runCli } from './agent-client.js';
import { formatAge, renderTable } from './table.js';

export function run(argv: string[]): Promise<number> {
  return runCli(async () => {
    const opts = parseCommon(argv);
    if (opts.rest[0] !== 'list') throw new CliError('usage: pharos l2 list [-o json|yaml] [--agent URL]', EXIT.usage);
    const l2 = await fetchList(opts.agent, 'l2');
    if (printStructured(l2, opts.output)) return 0;
    const rows = [...l2]
      .sort((a, b) => a.service.localeCompare(b.service) || a.address.localeCompare(b.address))
      .map((l) => [
        l.service, l.address, l.interfaces.join(',') || '-', l.holder || '<none>', l.since ? formatAge(l.since, new Date()) : '-', String(l.transitions),
        l.state || '-', l.duplicate ? `${l.duplicate.mac} ${formatAge(l.duplicate.at, new Date())} ago (${l.duplicate.count})` : '-',
      ]);
    console.log(renderTable(['SERVICE', 'ADDRESS', 'INTERFACES', 'HOLDER', 'SINCE', 'TRANSITIONS', 'STATE', 'DUPLICATE ANSWER'], rows));
    return 0;
  });
}
