/**
 * The lab's deployment controller, pure part. `pharos lab` runs no
 * containers: a Deployment's pods are played by the lab's echo backends
 * (pod i on backend i mod the number of backends, answering on 80 and
 * 8080), so a walkthrough's Deployment + Service gets endpoints, and the
 * Deployment gets the status the deployment controller would write, so
 * `kubectl rollout status deployment/NAME` finishes. Given the stored
 * Deployments and the lab's backends: the Pod objects that should exist,
 * the status each Deployment should carry, and the backends (pods) the
 * endpoint controller selects from.
 */
import { createHash } from 'node:crypto';
import type { LabBackend } from './endpoints.js';

export interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol?: string;
}

export interface DeploymentLike {
  metadata: { name: string; namespace?: string; generation?: number; uid?: string };
  spec?: {
    replicas?: number;
    template?: {
      metadata?: { labels?: Record<string, string> };
      spec?: { containers?: { name?: string; ports?: ContainerPort[] }[] };
    };
  };
  status?: DeploymentStatus;
}

export interface DeploymentCondition {
  type: 'Available' | 'Progressing';
  status: 'True' | 'False';
  reason: string;
  message: string;
  lastUpdateTime: string;
  lastTransitionTime: string;
}

export interface DeploymentStatus {
  observedGeneration?: number;
  replicas?: number;
  updatedReplicas?: number;
  readyReplicas?: number;
  availableReplicas?: number;
  unavailableReplicas?: number;
  conditions?: DeploymentCondition[];
}

export interface PodObject {
  apiVersion: 'v1';
  kind: 'Pod';
  metadata: {
    name: string;
    namespace: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
    ownerReferences: { apiVersion: string; kind: string; name: string; uid: string; controller: boolean }[];
  };
  spec: { nodeName: string; containers: unknown[] };
  status: {
    phase: 'Running';
    podIP?: string;
    podIPs: { ip: string }[];
    conditions: { type: string; status: 'True' }[];
  };
}

/** Annotation on the Pods this controller writes (it never touches others): the lab backend that plays the pod. */
export const POD_BACKEND_ANNOTATION = 'lab.pharos.io/backend';

/** kubectl refuses more; the lab has a handful of backends anyway. */
const MAX_REPLICAS = 64;

function hash(text: string, length: number): string {
  // Pod names take [a-z0-9]: base 36 of a digest, as the ReplicaSet controller's pod-template-hash is a short safe string.
  return BigInt(`0x${createHash('sha256').update(text).digest('hex').slice(0, 16)}`).toString(36).padStart(length, '0').slice(0, length);
}

/** The replicas a Deployment asks for: spec.replicas, 1 when unset (the API server's default), bounded. */
export function wantedReplicas(d: DeploymentLike): number {
  const r = d.spec?.replicas;
  if (r === undefined || r === null) return 1;
  return Number.isInteger(r) && r > 0 ? Math.min(r, MAX_REPLICAS) : 0;
}

/** The ReplicaSet name a cluster would give the Deployment's current template (name-<pod-template-hash>). */
export function templateHash(d: DeploymentLike): string {
  return hash(JSON.stringify(d.spec?.template ?? {}), 10);
}

/** The Pod objects the lab plays for every Deployment, pod i on backend i mod backends. */
export function deploymentPods(deployments: DeploymentLike[], backends: LabBackend[]): PodObject[] {
  if (backends.length === 0) return [];
  const out: PodObject[] = [];
  for (const d of deployments) {
    const namespace = d.metadata.namespace ?? 'default';
    const podHash = templateHash(d);
    const rs = `${d.metadata.name}-${podHash}`;
    const containers = d.spec?.template?.spec?.containers ?? [];
    for (let i = 0; i < wantedReplicas(d); i++) {
      const be = backends[i % backends.length]!;
      const ips = [be.v4, be.v6].filter((x): x is string => !!x);
      out.push({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: `${rs}-${hash(`${rs}/${i}`, 5)}`,
          namespace,
          labels: { ...(d.spec?.template?.metadata?.labels ?? {}), 'pod-template-hash': podHash },
          annotations: { [POD_BACKEND_ANNOTATION]: be.name },
          ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: rs, uid: `${d.metadata.uid ?? ''}-${podHash}`, controller: true }],
        },
        spec: { nodeName: be.name, containers },
        status: {
          phase: 'Running',
          ...(ips[0] ? { podIP: ips[0] } : {}),
          podIPs: ips.map((ip) => ({ ip })),
          conditions: ['PodScheduled', 'Initialized', 'ContainersReady', 'Ready'].map((type) => ({ type, status: 'True' as const })),
        },
      });
    }
  }
  return out;
}

/** The pods as the endpoint controller's backends: the backend's addresses, the pod's labels, namespace and container ports. */
export function podBackends(pods: PodObject[], backends: LabBackend[]): LabBackend[] {
  const byName = new Map(backends.map((b) => [b.name, b]));
  const out: LabBackend[] = [];
  for (const pod of pods) {
    const be = byName.get(pod.metadata.annotations[POD_BACKEND_ANNOTATION]!);
    if (!be) continue;
    const containerPorts = (pod.spec.containers as { ports?: ContainerPort[] }[]).flatMap((c) => c.ports ?? []);
    out.push({ name: pod.metadata.name, namespace: pod.metadata.namespace, labels: pod.metadata.labels, v4: be.v4, v6: be.v6, port: be.port, containerPorts });
  }
  return out;
}

/**
 * The status the deployment controller writes once every pod is up:
 * observedGeneration, the replica counts, Available (MinimumReplicasAvailable)
 * and Progressing (NewReplicaSetAvailable) — what `kubectl rollout status`
 * waits for. Zero counts are left out, as the API omits them. Condition
 * times are kept from `previous` while a condition does not change, so an
 * unchanged Deployment needs no write.
 */
export function deploymentStatus(d: DeploymentLike, readyPods: number, now: Date): DeploymentStatus {
  const wanted = wantedReplicas(d);
  const ready = Math.min(readyPods, wanted);
  const at = now.toISOString().replace(/\.\d+Z$/, 'Z');
  const previous = d.status?.conditions ?? [];
  const condition = (type: DeploymentCondition['type'], status: 'True' | 'False', reason: string, message: string): DeploymentCondition => {
    const before = previous.find((c) => c.type === type);
    const same = before && before.status === status && before.reason === reason;
    return { type, status, reason, message, lastUpdateTime: same ? before.lastUpdateTime : at, lastTransitionTime: before && before.status === status ? before.lastTransitionTime : at };
  };
  const rs = `${d.metadata.name}-${templateHash(d)}`;
  const conditions = [
    ready >= wanted
      ? condition('Available', 'True', 'MinimumReplicasAvailable', 'Deployment has minimum availability.')
      : condition('Available', 'False', 'MinimumReplicasUnavailable', 'Deployment does not have minimum availability.'),
    ready >= wanted
      ? condition('Progressing', 'True', 'NewReplicaSetAvailable', `ReplicaSet "${rs}" has successfully progressed.`)
      : condition('Progressing', 'True', 'ReplicaSetUpdated', `ReplicaSet "${rs}" is progressing.`),
  ];
  const count = (n: number): number | undefined => (n > 0 ? n : undefined);
  const status: DeploymentStatus = {
    observedGeneration: d.metadata.generation ?? 1,
    replicas: count(wanted),
    updatedReplicas: count(wanted),
    readyReplicas: count(ready),
    availableReplicas: count(ready),
    unavailableReplicas: count(wanted - ready),
    conditions,
  };
  for (const k of Object.keys(status) as (keyof DeploymentStatus)[]) if (status[k] === undefined) delete status[k];
  return status;
}
