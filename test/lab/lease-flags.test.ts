/**
 * `pharos lab up --l2-lease-duration/--l2-lease-renew-deadline/
 * --l2-lease-retry-period`: Cilium's l2announcements.* values, as the
 * agents' lease flags.
 */
import t from 'tap';
import { leaseAgentArgs, parseLeaseDuration } from '../../src/lab/lease-flags.js';

t.test('durations as Cilium\'s Helm values spell them', async (t) => {
  t.equal(parseLeaseDuration('3s'), 3);
  t.equal(parseLeaseDuration('200ms'), 0.2);
  t.equal(parseLeaseDuration('1m'), 60);
  t.equal(parseLeaseDuration('15'), 15, 'a bare number is seconds');
  t.equal(parseLeaseDuration('1.5s'), 1.5);
  for (const bad of ['', '0s', '-1s', '3h', '2h', 'soon', '3 s s']) t.equal(parseLeaseDuration(bad), undefined, `${JSON.stringify(bad)} refused`);
});

t.test('the walkthrough\'s values become the agent flags; a renew deadline not shorter than the duration is refused', async (t) => {
  t.same(leaseAgentArgs({ duration: '3s', renew: '1s', retry: '200ms' }), { args: ['--l2-lease-duration=3', '--l2-lease-renew=1', '--l2-lease-retry=0.2'] });
  t.same(leaseAgentArgs({}), { args: [] });
  t.same(leaseAgentArgs({ retry: '500ms' }), { args: ['--l2-lease-retry=0.5'] });
  t.match(leaseAgentArgs({ duration: '3s' }), { error: /renew-deadline must be shorter/ }, 'the agent\'s default renew (5 s) is not shorter than 3 s');
  t.match(leaseAgentArgs({ duration: '3s', renew: '3s' }), { error: /renew-deadline must be shorter/ });
  t.match(leaseAgentArgs({ duration: 'x' }), { error: /--l2-lease-duration x/ });
});
