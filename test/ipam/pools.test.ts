/** Which pool an address lies in, as `pharos explain` and /v1/state report it: from the pools alone. */
import t from 'tap';
import { poolsOfAddresses } from '../../src/ipam/pools.js';
import { pool } from './fixtures.js';

t.test('each address is named by the pool whose blocks hold it; overlaps go to the older pool; others are left out', async (t) => {
  const pools = [
    pool({ name: 'blue', created: '2024-01-01T00:00:00Z', blocks: ['198.51.100.0/26', '2001:db8:1::/120'] }),
    pool({ name: 'red', created: '2024-01-02T00:00:00Z', blocks: [['198.51.100.64', '198.51.100.70']] }),
    // Overlaps blue and is younger: conflicting, so it names nothing.
    pool({ name: 'late', created: '2024-01-03T00:00:00Z', blocks: ['198.51.100.32/27'] }),
  ];
  t.same(poolsOfAddresses(pools, ['198.51.100.40', '198.51.100.66', '2001:db8:1::7', '203.0.113.9', 'not-an-address']), {
    '198.51.100.40': 'blue',
    '198.51.100.66': 'red',
    '2001:db8:1::7': 'blue',
  });
  t.same(poolsOfAddresses(pools, []), {});
  t.same(poolsOfAddresses([], ['198.51.100.40']), {});
});
