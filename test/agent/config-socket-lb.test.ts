/** The node-local access flags (--socket-lb, --socket-lb-cgroup, --socket-lb-all-namespaces) as flags, environment and YAML. */
import t from 'tap';
import { agentHelp, resolveConfig } from '../../src/agent/config.js';

const noFile = (p: string): string => { throw new Error(`ENOENT: no such file ${p}`); };
const resolve = (argv: string[], env: Record<string, string> = {}, files: Record<string, string> = {}) =>
  resolveConfig({ argv: ['--manifests', '/m', ...argv], env, hostname: 'node-a', readFile: (p) => files[p] ?? noFile(p) });

t.test('on by default, on the cgroup v2 mount (found at start), the agent\'s own namespace only', async (t) => {
  const c = resolve([]);
  t.equal(c.socketLb, true);
  t.equal(c.socketLbCgroup, '', 'empty = discovered from /proc/self/mountinfo by the agent');
  t.equal(c.socketLbAllNamespaces, false);
});

t.test('turned off by --no-socket-lb, the environment, or the YAML key in either spelling', async (t) => {
  t.equal(resolve(['--no-socket-lb']).socketLb, false);
  t.equal(resolve(['--socket-lb=false']).socketLb, false);
  t.equal(resolve([], { PHAROS_SOCKET_LB: 'false' }).socketLb, false);
  t.equal(resolve(['--config', '/c.yaml'], {}, { '/c.yaml': 'socketLb: false\n' }).socketLb, false);
  t.equal(resolve(['--config', '/c.yaml'], {}, { '/c.yaml': 'socket-lb: false\n' }).socketLb, false);
  t.equal(resolve(['--config', '/c.yaml', '--socket-lb'], {}, { '/c.yaml': 'socketLb: false\n' }).socketLb, true, 'a flag beats the file');
});

t.test('cgroup and namespaces', async (t) => {
  const c = resolve(['--socket-lb-cgroup', '/sys/fs/cgroup/unified/system.slice', '--socket-lb-all-namespaces']);
  t.equal(c.socketLbCgroup, '/sys/fs/cgroup/unified/system.slice');
  t.equal(c.socketLbAllNamespaces, true);
  t.equal(resolve([], { PHAROS_SOCKET_LB_CGROUP: '/run/pharos/cgroupv2', PHAROS_SOCKET_LB_ALL_NAMESPACES: 'true' }).socketLbCgroup, '/run/pharos/cgroupv2');
  t.throws(() => resolve(['--socket-lb-cgroup', 'relative/dir']), /--socket-lb-cgroup: "relative\/dir" must be an absolute path/);
  t.throws(() => resolve(['--socket-lb=maybe']), /socket-lb: "maybe" is not true or false/);
});

t.test('help names the flags and the discovered default', async (t) => {
  const h = agentHelp();
  t.match(h, /--socket-lb\s.*\(default: true\)/);
  t.match(h, /--socket-lb-cgroup\s.*\(default: <cgroup v2 mount>\)/);
  t.match(h, /--socket-lb-all-namespaces/);
});
