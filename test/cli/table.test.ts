import t from 'tap';
import { renderTable } from '../../src/cli/table.js';
import { serviceRows } from '../../src/cli/service.js';
import { parseCommon } from '../../src/cli/agent-client.js';

t.test('tables align like kubectl', async (t) => {
  const out = renderTable(['NAME', 'DISABLED', 'AGE'], [['blue-pool', 'false', '5s'], ['red', 'true', '12m']]);
  t.equal(out, ['NAME        DISABLED   AGE', 'blue-pool   false      5s', 'red         true       12m'].join('\n'));
});

t.test('multi-line cells as in cilium service list', async (t) => {
  const rows = serviceRows([{
    id: 1, service: 'default/echo', kind: 'LoadBalancer', address: '198.51.100.10', port: 80, protocol: 'TCP', programmed: true,
    backends: [
      { id: 1, address: '203.0.113.11', port: 8080, weight: 1, state: 'active' },
      { id: 2, address: '2001:db8::5', port: 8080, weight: 1, state: 'terminating' },
    ],
  }]);
  const out = renderTable(['ID', 'FRONTEND', 'SERVICE', 'TYPE', 'BACKEND'], rows);
  t.equal(out.split('\n')[1], '1    198.51.100.10:80/TCP   default/echo   LoadBalancer   1 => 203.0.113.11:8080 (active)');
  t.match(out.split('\n')[2], /^ {58}2 => \[2001:db8::5\]:8080 \(terminating\)$/);
});

t.test('common CLI options', async (t) => {
  t.same(parseCommon(['list', '-o', 'json', '--agent', 'http://127.0.0.1:1'], {}), { agent: 'http://127.0.0.1:1', output: 'json', rest: ['list'] });
  t.same(parseCommon(['-ojson', 'x'], { PHAROS_AGENT: 'http://h:2' }).agent, 'http://h:2');
  t.throws(() => parseCommon(['-o', 'xml'], {}), /unknown output format/);
});
