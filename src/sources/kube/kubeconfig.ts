/**
 * Where the agent finds its API server: a kubeconfig file (`--kubeconfig`),
 * an explicit server URL (the lab's emulator, plain HTTP), or the pod's
 * in-cluster service account. Errors say what to fix.
 */
import { accessSync, constants, existsSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';

export interface KubeConfigOptions {
  /** Path of a kubeconfig file. */
  kubeconfig?: string;
  /** API server URL; overrides the kubeconfig's server, or alone builds a token-less config (http:// or https:// without verification). */
  server?: string;
}

export class KubeConfigError extends Error {
  override name = 'KubeConfigError';
}

const inClusterTokenPath = '/var/run/secrets/kubernetes.io/serviceaccount/token';

export function kubeConfigFrom(opts: KubeConfigOptions): KubeConfig {
  const kc = new KubeConfig();
  if (opts.kubeconfig) {
    try {
      accessSync(opts.kubeconfig, constants.R_OK);
    } catch (e) {
      throw new KubeConfigError(`cannot read kubeconfig ${opts.kubeconfig}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    try {
      kc.loadFromFile(opts.kubeconfig);
    } catch (e) {
      throw new KubeConfigError(`kubeconfig ${opts.kubeconfig} is not valid: ${(e as Error).message}`);
    }
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new KubeConfigError(`kubeconfig ${opts.kubeconfig} has no current context with a cluster`);
    if (opts.server) {
      const ctx = kc.getContextObject(kc.getCurrentContext());
      kc.clusters = kc.clusters.map((c) => (c.name === cluster.name ? { ...c, server: opts.server! } : c));
      if (!ctx) throw new KubeConfigError(`kubeconfig ${opts.kubeconfig}: current context not found`);
    }
    if (kc.getCurrentCluster()!.server.startsWith('http://') && !kc.getCurrentCluster()!.skipTLSVerify) {
      // The library refuses plain HTTP unless TLS verification is off (there is none to do).
      kc.clusters = kc.clusters.map((c) => (c.server.startsWith('http://') ? { ...c, skipTLSVerify: true } : c));
    }
    return kc;
  }
  if (opts.server) {
    let url: URL;
    try {
      url = new URL(opts.server);
    } catch {
      throw new KubeConfigError(`--server ${opts.server} is not a URL`);
    }
    kc.loadFromOptions({
      clusters: [{ name: 'pharos', server: url.href.replace(/\/$/, ''), skipTLSVerify: true }],
      users: [{ name: 'pharos' }],
      contexts: [{ name: 'pharos', cluster: 'pharos', user: 'pharos' }],
      currentContext: 'pharos',
    });
    return kc;
  }
  if (!process.env.KUBERNETES_SERVICE_HOST || !existsSync(inClusterTokenPath)) {
    throw new KubeConfigError(
      'no Kubernetes API configured: not running in a pod (KUBERNETES_SERVICE_HOST or the service account token is missing); pass --kubeconfig FILE or --manifests DIR',
    );
  }
  kc.loadFromCluster();
  return kc;
}
