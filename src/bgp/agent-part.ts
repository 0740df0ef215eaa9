/**
 * BGP in the agent: one speaker, driven by the BGP controller
 * (desired = desiredBgp(snapshot) → speaker.apply), its metrics, and its
 * views for /v1/state. On stop the speaker either keeps the routers'
 * routes (graceful restart: the XDP data path keeps forwarding while the
 * agent is away) or withdraws them, by --bgp-shutdown.
 */
import { BgpController, type BgpDrainState } from './controller.js';
import { BgpSpeaker } from './speaker.js';
import { bgpPeerViews, bgpRouteViews } from './metrics.js';
import type { NativeAddon } from '../native/libbpf.js';
import type { Service } from '../model/types.js';
import type { Store } from '../store/store.js';
import type { BgpPeerView, BgpRouteView } from '../metrics/state-view.js';
import type { AgentController } from '../store/controller.js';
import type { Logger } from '../model/log.js';

export interface BgpAgentOptions {
  store: Store;
  sockets: Pick<NativeAddon, 'tcpSocket' | 'setTcpMd5' | 'setTtl'>;
  nodeName: string;
  /** Default router ID when the policy gives none: an IPv4 address of this node. */
  routerId: string;
  /** True when this agent took over pinned maps of an earlier one (graceful-restart "restarting" bit). */
  restarting: boolean;
  shutdown: 'graceful' | 'withdraw';
  log: Logger;
  /** The agent's scope (loadBalancerClass, --default-lb-class). */
  isOurService: (svc: Service) => boolean;
  /** Services fully in this node's data path (others are not advertised). */
  isProgrammed: (service: string) => boolean;
  /** Where authSecretRef Secrets live (the agent's namespace in Kubernetes mode). */
  secretNamespace?: string;
  /** A draining node's GRACEFUL_SHUTDOWN phase before it withdraws (--bgp-drain-withdraw-delay). */
  drainWithdrawMs?: number;
}

export interface BgpAgentPart extends AgentController {
  /** The speaker (its sessions and routes are the agent's BGP metrics). */
  readonly speaker: BgpSpeaker;
  views(): { peers: BgpPeerView[]; routes: BgpRouteView[] };
  /** What keeps a neighbor unconfigured (`BGPPeeringPolicy edge: neighbor ...: authSecretRef: Secret pharos-system/x not found; ...`). */
  problems(): ReadonlyArray<{ message: string; since: string }>;
  /** This node's drain as BGP acts on it (GRACEFUL_SHUTDOWN, then withdrawn), if draining. */
  drain(): BgpDrainState | undefined;
}

export function bgpAgentPart(opts: BgpAgentOptions): BgpAgentPart {
  const log = opts.log.with({ controller: 'bgp' });
  const speaker = new BgpSpeaker({
    routerId: opts.routerId,
    sockets: opts.sockets,
    restarting: opts.restarting,
    log: (level, msg, fields) => log[level](msg, fields as Record<string, string | number | boolean | undefined>),
  });
  speaker.on('state-change', (peer, state) => log.info('BGP session state', { peer, state }));
  const controller = new BgpController(opts.store, speaker, {
    nodeName: opts.nodeName,
    isOurService: opts.isOurService,
    isProgrammed: opts.isProgrammed,
    ...(opts.secretNamespace ? { secretNamespace: opts.secretNamespace } : {}),
    ...(opts.drainWithdrawMs !== undefined ? { drainWithdrawMs: opts.drainWithdrawMs } : {}),
    log: (level, msg, fields) => log[level](msg, fields as Record<string, string | number | boolean | undefined>),
  });
  return {
    name: controller.name,
    kinds: controller.kinds,
    speaker,
    reconcile: (snapshot) => controller.reconcile(snapshot),
    stop: async () => {
      controller.stop();
      await speaker.stop({ graceful: opts.shutdown === 'graceful' });
      log.info(opts.shutdown === 'graceful' ? 'BGP stopped gracefully: routers keep our routes until we return' : 'BGP stopped: routes withdrawn');
    },
    views: () => ({ peers: bgpPeerViews(speaker), routes: bgpRouteViews(speaker) }),
    problems: () => controller.problems,
    drain: () => controller.drain,
  };
}
