/** `pharos l2 list`: which node answers ARP/NDP for which address. */
import { fetchList, runView } from './agent-client.js';
import { formatAge, renderTable } from './table.js';

export function run(argv: string[]): Promise<number> {
  return runView(argv, {
    usage: 'pharos l2 list', verb: 'list',
    fetch: (agent) => fetchList(agent, 'l2'),
    render: (l2) => renderTable(['SERVICE', 'ADDRESS', 'INTERFACES', 'HOLDER', 'SINCE', 'TRANSITIONS', 'STATE', 'DUPLICATE ANSWER'], [...l2]
      .sort((a, b) => a.service.localeCompare(b.service) || a.address.localeCompare(b.address))
      .map((l) => [
        l.service, l.address, l.interfaces.join(',') || '-', l.holder || '<none>', l.since ? formatAge(l.since, new Date()) : '-', String(l.transitions),
        l.state || '-', l.duplicate ? `${l.duplicate.mac} ${formatAge(l.duplicate.at, new Date())} ago (${l.duplicate.count})` : '-',
      ])),
  });
}
