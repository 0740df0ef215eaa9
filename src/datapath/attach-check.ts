/**
 * Is the data path still where the agent put it? The pure core of
 * attach-watch.ts: given what the agent attached on an interface and what
 * the kernel shows there now, what is wrong and what the agent may do
 * about it.
 *
 * An XDP program can be taken away under a running agent (`ip link set dev
 * X xdp off`, another tool attaching its own, an interface deleted and made
 * again); nothing tells the agent, and a node that keeps announcing an
 * address it no longer serves black-holes its share of the traffic.
 *
 * What the agent repairs and what it leaves alone:
 * - nothing attached (or our tc egress filter gone): attached again, in the
 *   mode chosen as at start (xdp-mode.ts; on an interface that took tc
 *   ingress, "attached" means our filter in the ingress slot);
 * - our own program in another mode (someone moved it by id): detached and
 *   attached again in the chosen mode;
 * - another program (any id that is not ours, XDP or tc): never replaced.
 *   Whoever attached it meant to: replacing it every few seconds would fight
 *   that tool (or a second agent given the same interface), each side
 *   undoing the other. xdp-tools' xdp-loader and Cilium do the same — they
 *   replace only programs they attached themselves unless forced. The agent
 *   says so, stops drawing traffic, and attaches again once the interface is
 *   free;
 * - the interface gone: waited for (attached again when it is back).
 */

/** How the data path's entry sits on an interface: XDP native / generic, or the tc build at tc ingress. */
export type AttachedMode = 'native' | 'generic' | 'tc';

/** What the agent attached on one interface. */
export interface ExpectedAttachment {
  interface: string;
  /** Kernel id of the agent's entry program (XDP; the tc build's when mode is 'tc'). */
  xdpProgId: number;
  /** The mode it was attached in (the choice of --xdp-mode, as the kernel took it). */
  mode: AttachedMode;
  /** Kernel id of the agent's tc egress program, where it attached one. */
  tcProgId?: number;
}

/** What the kernel shows on that interface now. */
export interface ObservedAttachment {
  /** False: no interface of that name any more. */
  exists: boolean;
  /** The XDP program there; for a tc-mode attachment, the program in the tc ingress slot (mode 'tc'). */
  xdp: { progId: number; mode: AttachedMode | 'none' };
  /** The program in the agent's tc egress slot (handle 1, priority 1): 0 none; undefined when it could not be looked at. */
  tcProgId?: number;
  /** Where the entry sits at tc ingress: an XDP program on the same interface (it sees every packet first). */
  xdpBeforeTc?: { progId: number; mode: AttachedMode | 'none' };
}

export type Finding =
  | { what: 'interface-gone' }
  | { what: 'xdp-none' }
  | { what: 'xdp-foreign'; progId: number; mode: AttachedMode }
  | { what: 'xdp-wrong-mode'; mode: AttachedMode }
  | { what: 'tc-none' }
  | { what: 'tc-foreign'; progId: number };

export type Repair = 'attach-xdp' | 'move-xdp' | 'attach-tc';

export interface Verdict {
  /** Everything that is not as the agent left it (empty: whole). */
  findings: Finding[];
  /** What the agent does about it now. */
  repairs: Repair[];
  /** What it must wait out (another program, the interface gone): the data path stays broken until then. */
  blocked: Finding[];
}

export function judgeAttachment(expected: ExpectedAttachment, observed: ObservedAttachment): Verdict {
  const v: Verdict = { findings: [], repairs: [], blocked: [] };
  const add = (f: Finding, repair?: Repair): void => {
    v.findings.push(f);
    if (repair) v.repairs.push(repair);
    else v.blocked.push(f);
  };
  if (!observed.exists) {
    add({ what: 'interface-gone' });
    return v;
  }
  const { progId, mode } = observed.xdp;
  const before = observed.xdpBeforeTc;
  if (expected.mode === 'tc' && before && before.progId !== 0 && before.mode !== 'none' && before.mode !== 'tc') {
    add({ what: 'xdp-foreign', progId: before.progId, mode: before.mode });
  }
  if (progId === 0 || mode === 'none') add({ what: 'xdp-none' }, 'attach-xdp');
  else if (progId !== expected.xdpProgId) add({ what: 'xdp-foreign', progId, mode });
  else if (mode !== expected.mode) add({ what: 'xdp-wrong-mode', mode }, 'move-xdp');
  if (expected.tcProgId !== undefined && observed.tcProgId !== undefined && observed.tcProgId !== expected.tcProgId) {
    if (observed.tcProgId === 0) add({ what: 'tc-none' }, 'attach-tc');
    else add({ what: 'tc-foreign', progId: observed.tcProgId });
  }
  return v;
}

/** One finding in words, for the log, /readyz and `pharos status`. */
export function describeFinding(iface: string, expected: Pick<ExpectedAttachment, 'mode'>, f: Finding): string {
  switch (f.what) {
    case 'interface-gone': return `${iface}: the interface is gone (attached again when it is back)`;
    case 'xdp-none': return expected.mode === 'tc' ? `${iface}: no pharos program at tc ingress` : `${iface}: no XDP program attached`;
    case 'xdp-foreign': {
      if (f.mode === 'tc') return `${iface}: another tc ingress program (id ${f.progId}) holds handle 1 priority 1; pharos does not replace it`;
      const off = f.mode === 'native' ? 'xdpdrv' : 'xdpgeneric';
      if (expected.mode === 'tc') {
        return `${iface}: another XDP program (id ${f.progId}, ${f.mode}) is attached and sees every packet before the pharos tc ingress program; pharos does not remove a program it did not attach: remove it (ip link set dev ${iface} ${off} off)`;
      }
      return `${iface}: another XDP program (id ${f.progId}, ${f.mode}) is attached; pharos does not replace a program it did not attach: remove it (ip link set dev ${iface} ${off} off) and pharos attaches its own`;
    }
    case 'xdp-wrong-mode': return `${iface}: the pharos XDP program is attached in ${f.mode} mode, not ${expected.mode}`;
    case 'tc-none': return `${iface}: no tc egress program`;
    case 'tc-foreign': return `${iface}: another tc egress program (id ${f.progId}) holds handle 1 priority 1; pharos does not replace it`;
  }
}

