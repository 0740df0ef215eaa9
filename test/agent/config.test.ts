import t from 'tap';
import { agentHelp, ConfigError, FLAGS, resolveConfig } from '../../src/agent/config.js';

const noFile = (p: string): string => { throw new Error(`ENOENT: no such file ${p}`); };
const resolve = (argv: string[], env: Record<string, string> = {}, files: Record<string, string> = {}) =>
  resolveConfig({ argv, env, hostname: 'node-a', readFile: (p) => files[p] ?? noFile(p) });

t.test('defaults and derived values', async (t) => {
  const c = resolve(['--manifests', '/etc/pharos']);
  t.equal(c.nodeName, 'node-a');
  t.equal(c.pinDir, '/sys/fs/bpf/pharos/node-a');
  t.equal(c.http, '127.0.0.1:9643');
  t.equal(c.stateDir, '/var/lib/pharos');
  t.equal(c.mode, 'snat');
  t.same(c.snatPorts, [32768, 60999]);
  t.equal(c.inCluster, false);
  t.equal(c.namespace, 'pharos-system', 'Leases and BGP Secrets in pharos\' own namespace (the DaemonSet sets PHAROS_NAMESPACE to the pod\'s)');
  t.equal(resolve(['--manifests', '/m'], { PHAROS_NAMESPACE: 'lb' }).namespace, 'lb');
  t.equal(c.procSysNet, '/proc/sys/net', 'net sysctls where a host process finds them');
  t.equal(resolve(['--manifests', '/m'], { PHAROS_PROC_SYS_NET: '/host/proc/sys/net' }).procSysNet, '/host/proc/sys/net', 'the DaemonSet\'s mount of the host\'s /proc/sys/net');
});

t.test('precedence: flag > environment > file > default', async (t) => {
  const files = { '/c.yaml': 'nodeName: from-file\nlog-level: debug\ninterfaces: [eth1, eth2]\nsnatPorts: 40000-41000\n' };
  const c = resolve(['--manifests', '/m', '--config', '/c.yaml', '--node-name', 'from-flag'], { PHAROS_LOG_LEVEL: 'warn' }, files);
  t.equal(c.nodeName, 'from-flag');
  t.equal(c.logLevel, 'warn');
  t.same(c.interfaces, ['eth1', 'eth2']);
  t.same(c.snatPorts, [40000, 41000]);
  const c2 = resolve(['--manifests=/m', '--interfaces=a,b', '--no-default-lb-class']);
  t.same(c2.interfaces, ['a', 'b']);
  t.equal(c2.defaultLoadBalancerClass, false);
});

t.test('in-cluster when running in a pod without another source', async (t) => {
  const c = resolve([], { KUBERNETES_SERVICE_HOST: '198.18.0.1' });
  t.equal(c.inCluster, true);
});

t.test('bad input names the flag or key', async (t) => {
  const cases: [string[], Record<string, string>, Record<string, string>, RegExp][] = [
    [[], {}, {}, /no source/],
    [['--manifests', '/m', '--kubeconfig', '/k'], {}, {}, /exclusive/],
    [['--manifests', '/m', '--bogus', '1'], {}, {}, /unknown flag --bogus/],
    [['--manifests', '/m', '--forwarding-mode', 'fast'], {}, {}, /flag forwarding-mode: "fast" is not one of snat, dsr/],
    [['--manifests', '/m', '--snat-ports', '5-2'], {}, {}, /snat-ports: "5-2" is not a port range/],
    [['--manifests', '/m', '--http', 'localhost'], {}, {}, /--http: "localhost" is not HOST:PORT/],
    [['--manifests', '/m', '--maglev-table-size', '16380'], {}, {}, /not a prime/],
    [['--manifests', '/m', '--node-name', 'Bad_Name'], {}, {}, /--node-name/],
    [['--kubeconfig', '/k', '--namespace', 'Pharos_System'], {}, {}, /--namespace: "Pharos_System" is not a valid namespace name/],
    [['--manifests', '/m', '--proc-sys-net', 'host/proc/sys/net'], {}, {}, /--proc-sys-net: "host\/proc\/sys\/net" is not an absolute path/],
    [['--manifests', '/m', '--interfaces', 'averyveryverylongname0'], {}, {}, /--interfaces/],
    [['--manifests', '/m', '--config', '/missing.yaml'], {}, {}, /config file \/missing.yaml: cannot read/],
    [['--manifests', '/m', '--config', '/c.yaml'], {}, { '/c.yaml': 'nodeName: [' }, /not valid YAML/],
    [['--manifests', '/m', '--config', '/c.yaml'], {}, { '/c.yaml': 'colour: blue' }, /unknown key "colour"/],
    [['--manifests', '/m'], { PHAROS_K8S_QPS: 'lots' }, {}, /PHAROS_K8S_QPS/],
    [['--manifests'], {}, {}, /needs a value/],
  ];
  for (const [argv, env, files, re] of cases) {
    t.throws(() => resolve(argv, env, files), re, argv.join(' '));
    try { resolve(argv, env, files); } catch (e) { t.type(e, ConfigError); }
  }
});

t.test('help documents every flag with its default', async (t) => {
  const help = agentHelp();
  for (const f of FLAGS) t.match(help, `--${f.flag}`);
  t.match(help, /default: 127\.0\.0\.1:9643/);
  t.match(help, /\/sys\/fs\/bpf\/pharos\/<node-name>/);
});
