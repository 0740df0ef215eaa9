/**
 * The data path's self-check without a kernel: the pure core (what the
 * agent repairs — nothing attached, its own program in another mode, its
 * tc filter gone — and what it waits out — another program, the interface
 * gone), then the watch over a fake kernel (test/agent/datapath-check.test.ts
 * does it for real).
 */
import t from 'tap';
import { describeFinding, judgeAttachment, type ExpectedAttachment } from '../../src/datapath/attach-check.js';
import { AttachmentWatch } from '../../src/datapath/attach-watch.js';
import type { BpfMap } from '../../src/native/libbpf.js';

const expected: ExpectedAttachment = { interface: 'eth0', xdpProgId: 41, mode: 'generic', tcProgId: 42 };

t.test('our programs in place: whole, nothing to do', async (t) => {
  const v = judgeAttachment(expected, { exists: true, xdp: { progId: 41, mode: 'generic' }, tcProgId: 42 });
  t.same(v, { findings: [], repairs: [], blocked: [] });
});

t.test('nothing attached: attach again', async (t) => {
  const v = judgeAttachment(expected, { exists: true, xdp: { progId: 0, mode: 'none' }, tcProgId: 0 });
  t.same(v.repairs, ['attach-xdp', 'attach-tc']);
  t.same(v.blocked, []);
});

t.test('another XDP program: never replaced, the data path stays broken', async (t) => {
  const v = judgeAttachment(expected, { exists: true, xdp: { progId: 77, mode: 'native' }, tcProgId: 42 });
  t.same(v.repairs, []);
  t.same(v.blocked, [{ what: 'xdp-foreign', progId: 77, mode: 'native' }]);
  t.match(describeFinding('eth0', expected, v.blocked[0]!), /another XDP program \(id 77, native\).*ip link set dev eth0 xdpdrv off/);
});

t.test('our program moved to another mode: moved back', async (t) => {
  const v = judgeAttachment(expected, { exists: true, xdp: { progId: 41, mode: 'native' }, tcProgId: 42 });
  t.same(v.repairs, ['move-xdp']);
});

t.test('another tc egress program in our slot: not replaced', async (t) => {
  const v = judgeAttachment(expected, { exists: true, xdp: { progId: 41, mode: 'generic' }, tcProgId: 9 });
  t.same(v.blocked, [{ what: 'tc-foreign', progId: 9 }]);
});

t.test('tc not looked at (no tc command), or none attached at start: only XDP judged', async (t) => {
  t.same(judgeAttachment(expected, { exists: true, xdp: { progId: 41, mode: 'generic' } }).findings, []);
  const { tcProgId: _tc, ...xdpOnly } = expected;
  t.same(judgeAttachment(xdpOnly, { exists: true, xdp: { progId: 41, mode: 'generic' }, tcProgId: 0 }).findings, []);
});

t.test('interface gone: waited for', async (t) => {
  const v = judgeAttachment(expected, { exists: false, xdp: { progId: 0, mode: 'none' } });
  t.same(v.blocked, [{ what: 'interface-gone' }]);
  t.same(v.repairs, []);
});

// ---- the watch itself, over a fake kernel: repairs, what it waits out, and when it tells the agent.

type Xdp = { progId: number; mode: 'native' | 'generic' | 'none' };

function fakeKernel() {
  const k = {
    xdp: new Map<string, Xdp>([['eth0', { progId: 41, mode: 'generic' }]]),
    tc: new Map<string, number>([['eth0', 42]]),
    pins: new Map<string, number>([['/pins/ph_ct', 7]]),
    attachError: undefined as string | undefined,
    changes: [] as boolean[],
    logs: [] as string[],
  };
  const ifindexOf = (name: string): number => {
    if (!k.xdp.has(name)) throw Object.assign(new Error(`interface '${name}'`), { code: 'ENODEV' });
    return 2;
  };
  const map = { id: 7, name: 'ph_ct', pin: (path: string) => { k.pins.set(path, 7); } };
  const attachments = [{ interface: 'eth0', ifindex: 2, mode: 'generic', reason: 'virtual device' }];
  const watch = new AttachmentWatch({
    addon: {
      ifIndex: ifindexOf,
      xdpQuery: () => k.xdp.get('eth0')!,
      xdpDetach: () => { k.xdp.set('eth0', { progId: 0, mode: 'none' }); },
      tcQuery: () => { throw new Error('the test probes tc through tcProbe'); },
      openPinnedMap: (path: string) => {
        const id = k.pins.get(path);
        if (id === undefined) throw Object.assign(new Error(`${path}: ENOENT`), { code: 'ENOENT' });
        return { id, close: () => undefined } as unknown as BpfMap;
      },
    },
    programs: { xdp: 41, tcEgress: 42 },
    attachments,
    attachXdp: (name) => {
      if (k.attachError) throw new Error(k.attachError);
      if (k.xdp.get(name)!.progId !== 0) throw new Error('EEXIST');
      k.xdp.set(name, { progId: 41, mode: 'generic' });
      return { ifindex: 2, mode: 'generic', reason: 'virtual device' };
    },
    attachTcEgress: (name) => { k.tc.set(name, 42); },
    tcProbe: async (name) => k.tc.get(name),
    pins: [{ path: '/pins/ph_ct', map: map as unknown as BpfMap }],
    log: { info: (m) => k.logs.push(m), warn: (m, f) => k.logs.push(`${m} ${JSON.stringify(f)}`), error: (m) => k.logs.push(m) },
    onChange: (whole) => k.changes.push(whole),
  });
  return { k, watch, attachments };
}

t.test('watch: a detached program and a deleted tc filter are attached again within the check; the agent is not told', async (t) => {
  const { k, watch } = fakeKernel();
  t.ok((await watch.check()).whole, 'whole as attached');
  k.xdp.set('eth0', { progId: 0, mode: 'none' });
  k.tc.set('eth0', 0);
  const h = await watch.check();
  t.ok(h.whole, 'repaired in the same check: still whole');
  t.same(k.xdp.get('eth0'), { progId: 41, mode: 'generic' });
  t.equal(k.tc.get('eth0'), 42);
  t.equal(h.interfaces[0]!.reattached, 2);
  t.same(k.changes, [], 'no withdrawal for a gap already closed');
  t.ok(k.logs.some((l) => /XDP program was gone: attached again .*"interface":"eth0".*"found":"nothing attached"/.test(l)));
});

t.test('watch: our program moved to another mode is detached and attached in the chosen one', async (t) => {
  const { k, watch } = fakeKernel();
  k.xdp.set('eth0', { progId: 41, mode: 'native' });
  t.ok((await watch.check()).whole);
  t.same(k.xdp.get('eth0'), { progId: 41, mode: 'generic' });
});

t.test('watch: another program is left in place and the agent told once; whole again when it goes', async (t) => {
  const { k, watch } = fakeKernel();
  k.xdp.set('eth0', { progId: 77, mode: 'native' });
  const h = await watch.check();
  t.notOk(h.whole);
  t.ok(h.brokenSince);
  t.match(h.interfaces[0]!.problem, /another XDP program \(id 77, native\)/);
  t.same(k.xdp.get('eth0'), { progId: 77, mode: 'native' }, 'not replaced');
  await watch.check();
  t.same(k.changes, [false], 'told once, not every check');
  t.equal(k.logs.filter((l) => l.startsWith('data path not in place')).length, 1, 'a standing problem is logged once');
  k.xdp.set('eth0', { progId: 0, mode: 'none' });
  const again = await watch.check();
  t.ok(again.whole);
  t.equal(again.brokenSince, undefined);
  t.same(k.changes, [false, true]);
});

t.test('watch: an attach that fails keeps the data path broken, with the error as the reason', async (t) => {
  const { k, watch } = fakeKernel();
  k.xdp.set('eth0', { progId: 0, mode: 'none' });
  k.attachError = 'XDP attach to ifindex 2 (eth0) (generic): Device or resource busy';
  const h = await watch.check();
  t.notOk(h.whole);
  t.match(h.interfaces[0]!.problem, /no XDP program attached; attaching again failed: .*busy/);
  k.attachError = undefined;
  t.ok((await watch.check()).whole);
  t.same(k.changes, [false, true]);
});

t.test('watch: a pin gone is pinned again; a pin of another map is reported, not replaced, and does not break the data path', async (t) => {
  const { k, watch } = fakeKernel();
  k.pins.delete('/pins/ph_ct');
  t.same((await watch.check()).pins, []);
  t.equal(k.pins.get('/pins/ph_ct'), 7, 'pinned again');
  k.pins.set('/pins/ph_ct', 9);
  const h = await watch.check();
  t.ok(h.whole);
  t.match(h.pins[0], /holds another map \(id 9\) than the one pharos writes \(id 7\)/);
  t.equal(k.pins.get('/pins/ph_ct'), 9, 'left alone');
});

t.test('watch: the interface gone is waited for, then attached again', async (t) => {
  const { k, watch } = fakeKernel();
  k.xdp.delete('eth0');
  const h = await watch.check();
  t.notOk(h.whole);
  t.match(h.interfaces[0]!.problem, /the interface is gone/);
  k.xdp.set('eth0', { progId: 0, mode: 'none' });
  k.tc.set('eth0', 0);
  t.ok((await watch.check()).whole);
  t.same(k.changes, [false, true]);
});

t.test('tc hook: the entry in the tc ingress slot is judged like an XDP program', async (t) => {
  const tc: ExpectedAttachment = { interface: 'eth0', xdpProgId: 51, mode: 'tc', tcProgId: 42 };
  t.same(judgeAttachment(tc, { exists: true, xdp: { progId: 51, mode: 'tc' }, tcProgId: 42 }).findings, []);
  const gone = judgeAttachment(tc, { exists: true, xdp: { progId: 0, mode: 'none' }, tcProgId: 42 });
  t.same(gone.repairs, ['attach-xdp']);
  t.equal(describeFinding('eth0', tc, gone.findings[0]!), 'eth0: no pharos program at tc ingress');
  const foreign = judgeAttachment(tc, { exists: true, xdp: { progId: 99, mode: 'tc' }, tcProgId: 42 });
  t.same(foreign.blocked, [{ what: 'xdp-foreign', progId: 99, mode: 'tc' }]);
  t.match(describeFinding('eth0', tc, foreign.blocked[0]!), /another tc ingress program \(id 99\) holds handle 1 priority 1/);
});

t.test('watch: an interface in tc mode is checked at tc ingress, and attached there again when its filter is gone', async (t) => {
  const ingress = new Map<string, number>([['eth0', 51]]);
  const egress = new Map<string, number>([['eth0', 42]]);
  let xdp: Xdp = { progId: 0, mode: 'none' };
  const reattached: string[] = [];
  const watch = new AttachmentWatch({
    addon: {
      ifIndex: () => 2,
      xdpQuery: () => xdp,
      tcQuery: () => 0,
      xdpDetach: () => undefined,
      openPinnedMap: () => ({ id: 7, close: () => undefined }) as unknown as BpfMap,
    },
    programs: { xdp: 41, tcEgress: 42, tcIngress: 51 },
    attachments: [{ interface: 'eth0', ifindex: 2, mode: 'tc', reason: 'virtual device' }],
    attachXdp: (name) => {
      reattached.push(name);
      ingress.set(name, 51);
      return { ifindex: 2, mode: 'tc', reason: 'virtual device' };
    },
    attachTcEgress: (name) => { egress.set(name, 42); },
    tcProbe: async (name, direction) => (direction === 'ingress' ? ingress : egress).get(name),
    pins: [],
    log: { info: () => undefined, warn: () => undefined, error: () => undefined },
    onChange: () => undefined,
  });
  t.ok((await watch.check()).whole, 'whole as attached');
  ingress.set('eth0', 0);
  const h = await watch.check();
  t.ok(h.whole, 'repaired within the check');
  t.same(reattached, ['eth0']);
  t.equal(ingress.get('eth0'), 51);
  ingress.set('eth0', 99);
  const foreign = await watch.check();
  t.notOk(foreign.whole, 'another program in our ingress slot is not replaced');
  t.match(foreign.interfaces[0]!.problem, /another tc ingress program \(id 99\)/);
  ingress.set('eth0', 51);
  xdp = { progId: 77, mode: 'generic' };
  const before = await watch.check();
  t.notOk(before.whole, 'an XDP program in front of the tc build: broken, and left in place');
  t.match(before.interfaces[0]!.problem, /another XDP program \(id 77, generic\) is attached and sees every packet before the pharos tc ingress program.*xdpgeneric off/);
  xdp = { progId: 0, mode: 'none' };
  t.ok((await watch.check()).whole, 'whole again once it is gone');
});
