/**
 * `pharos lab up --agent-arg FLAG`: every agent gets the flag; a start that
 * fails (here: a flag the agent refuses) removes what it made but keeps the
 * logs, and says where they are. `--l2-lease-duration/--l2-lease-renew-deadline/
 * --l2-lease-retry-period`: Cilium's l2announcements.* values as the agents'
 * lease flags (pure; the walkthrough test sees them reach the leases).
 */
import t from 'tap';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { privilegedUnavailable } from '../support/privileged.js';
import { Lab } from '../../src/lab/netns.js';
import { WalkthroughLab } from '../walkthrough/walkthrough-lab.js';
import { leaseAgentArgs, parseLeaseDuration } from '../../src/lab/lease-flags.js';

const PREFIX = 'phwf';

t.test('a failed lab up keeps its logs; --agent-arg reaches the agents', { skip: privilegedUnavailable() }, async (t) => {
  const lab = new WalkthroughLab(PREFIX);
  t.teardown(() => lab.down());
  const r = await lab.lab(['up', '--nodes', '2', '--agent-arg=--no-such-flag'], 120_000);
  t.equal(r.code, 1, 'lab up fails');
  const kept = /the logs are kept in (\S+)/.exec(r.stderr)?.[1];
  t.ok(kept && existsSync(kept), `it says where the logs are: ${kept}`);
  t.teardown(() => { if (kept) rmSync(kept, { recursive: true, force: true }); });
  const files = kept ? readdirSync(kept) : [];
  const agentLogs = files.filter((f) => f.startsWith('agent-'));
  t.ok(agentLogs.length > 0, `agents' logs among them: ${files.join(', ')}`);
  const text = agentLogs.map((f) => readFileSync(join(kept!, f), 'utf8')).join('\n');
  t.match(text, /unknown flag --no-such-flag/, 'the flag reached the agent, and its refusal is in its log');
  t.same(await Lab.list(PREFIX), [], 'no namespace left behind');
  t.notOk(existsSync(lab.stateDir), 'the state directory is gone');
});

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
