/**
 * deploy/systemd/pharos-agent.service works on a host where /sys/fs/bpf is
 * not mounted yet: the mount in ExecStartPre needs CAP_SYS_ADMIN, outside
 * the unit's own CapabilityBoundingSet, so it runs with full privileges
 * ('+'); the agent runs the `pharos` the setup links; systemd accepts the
 * unit (systemd-analyze verify).
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../src/datapath/bpf-build.js';

const UNIT = join(PROJECT_ROOT, 'deploy', 'systemd', 'pharos-agent.service');

t.test('the unit', async (t) => {
  const text = readFileSync(UNIT, 'utf8');
  const values = (key: string): string[] => [...text.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!);
  const bounding = values('CapabilityBoundingSet').join(' ');
  t.notMatch(bounding, /CAP_SYS_ADMIN/, 'the agent itself does not get CAP_SYS_ADMIN');
  for (const pre of values('ExecStartPre')) {
    if (/\bmount\b/.test(pre)) t.ok(pre.startsWith('+'), `a mount in ExecStartPre runs with full privileges: ${pre}`);
  }
  t.match(values('ExecStart')[0], /^\/usr\/local\/bin\/pharos agent /, 'runs the pharos that deploy/setup.sh links');
  const verify = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
  if (verify.status !== 0) return;
  const dir = mkdtempSync(join(tmpdir(), 'phs-unit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  copyFileSync(UNIT, join(dir, 'pharos-agent.service'));
  const r = spawnSync('systemd-analyze', ['verify', join(dir, 'pharos-agent.service')], { encoding: 'utf8', timeout: 30_000 });
  t.equal(r.status, 0, `systemd-analyze verify: ${r.stderr.trim() || 'ok'}`);
});
