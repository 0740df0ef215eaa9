/**
 * deploy/kubernetes/daemonset.yaml: the agent's HTTP endpoint (read-only,
 * unauthenticated: /v1/state holds the configuration and every VIP and
 * backend, /v1/conntrack every client) listens on the node's own address,
 * not on 0.0.0.0 of a hostNetwork pod, and the probes reach it there; the
 * container is not privileged and drops every capability it does not name.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { PROJECT_ROOT } from '../../src/datapath/bpf-build.js';
import { resolveConfig } from '../../src/agent/config.js';

type Json = any;

t.test('the DaemonSet', async (t) => {
  const docs = parseAllDocuments(readFileSync(join(PROJECT_ROOT, 'deploy', 'kubernetes', 'daemonset.yaml'), 'utf8')).map((d) => d.toJS() as Json);
  const ds = docs.find((d) => d?.kind === 'DaemonSet');
  const pod = ds.spec.template.spec;
  const c = pod.containers.find((x: Json) => x.name === 'agent');
  t.equal(pod.hostNetwork, true);
  const env = new Map<string, Json>(c.env.map((e: Json) => [e.name, e]));
  t.same(env.get('HOST_IP')?.valueFrom, { fieldRef: { fieldPath: 'status.hostIP' } }, 'HOST_IP from the downward API');
  const http = c.args[c.args.indexOf('--http') + 1];
  t.equal(http, '$(HOST_IP):9643', 'the endpoint binds the node address, not 0.0.0.0');
  // The command line the kubelet would run (env substituted) is a valid agent configuration.
  const argv = c.args.slice(1).map((a: string) => a.replace('$(HOST_IP)', '192.0.2.11').replace('$(PHAROS_INTERFACES)', env.get('PHAROS_INTERFACES').value));
  const cfg = resolveConfig({ argv, env: { KUBERNETES_SERVICE_HOST: '192.0.2.1', PHAROS_NODE_NAME: 'node-a' }, readFile: () => '' });
  t.equal(cfg.http, '192.0.2.11:9643');
  t.equal(c.readinessProbe.httpGet.port, 9643, 'the probes go to the pod IP (the node address) on that port');
  t.equal(c.securityContext.privileged, false);
  t.same(c.securityContext.capabilities.drop, ['ALL']);
});
