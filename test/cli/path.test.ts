/**
 * `pharos` is a command after the README's setup (deploy/setup.sh links
 * /usr/local/bin/pharos to this checkout's CLI): run through the PATH from
 * another directory, through the link, it prints its usage and talks to an
 * agent like `node dist/cli/main.js` does.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { accessSync, constants, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { PROJECT_ROOT } from '../../src/datapath/bpf-build.js';
import { privilegedUnavailable } from '../support/privileged.js';

const CLI = join(PROJECT_ROOT, 'dist', 'cli', 'main.js');

t.test('the built CLI is executable', async (t) => {
  t.doesNotThrow(() => accessSync(CLI, constants.X_OK), `${CLI} has its exec bit`);
});

// The link is made by the setup, as root (the same condition as the privileged tests).
t.test('pharos on the PATH runs this checkout\'s CLI', { skip: privilegedUnavailable() }, async (t) => {
  t.equal(realpathSync('/usr/local/bin/pharos'), realpathSync(CLI), '/usr/local/bin/pharos links to this checkout');
  const help = spawnSync('pharos', ['--help'], { cwd: tmpdir(), encoding: 'utf8', timeout: 20_000, env: { ...process.env, NODE_OPTIONS: '' } });
  t.equal(help.status, 0, `exit 0 (${help.stderr})`);
  t.match(help.stdout, /^Usage: pharos <command>/m);
  const status = spawnSync('pharos', ['status', '--agent', 'http://127.0.0.1:9'], { cwd: tmpdir(), encoding: 'utf8', timeout: 20_000, env: { ...process.env, NODE_OPTIONS: '' } });
  t.equal(status.status, 3, 'exit 3: agent unreachable, as the README says');
  t.match(status.stderr, /cannot reach the pharos agent at http:\/\/127\.0\.0\.1:9/);
});
