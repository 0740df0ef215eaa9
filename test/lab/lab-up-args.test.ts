/**
 * `pharos lab up --agent-arg FLAG`: every agent gets the flag; a start that
 * fails (here: a flag the agent refuses) removes what it made but keeps the
 * logs, and says where they are.
 */
import t from 'tap';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { privilegedUnavailable } from '../support/privileged.js';
import { NetnsSet } from '../../src/lab/netns.js';
import { WalkthroughLab } from '../walkthrough/walkthrough-lab.js';

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
  t.same(await NetnsSet.leftovers(PREFIX), [], 'no namespace left behind');
  t.notOk(existsSync(lab.stateDir), 'the state directory is gone');
});
