/**
 * The pure core of the data path's self-check: what the agent repairs
 * (nothing attached, its own program in another mode, its tc filter gone)
 * and what it waits out (another program, the interface gone).
 */
import t from 'tap';
import { describeFinding, judgeAttachment, tcSlotProgId, type ExpectedAttachment } from '../../src/datapath/attach-check.js';

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

t.test('the tc egress slot from `tc -j filter show`', async (t) => {
  // As iproute2 6.x prints it: the chain head, then the filter.
  const shown = '[{"protocol":"all","pref":1,"kind":"bpf","chain":0},{"protocol":"all","pref":1,"kind":"bpf","chain":0,"options":{"handle":"0x1","bpf_name":"lb.o:[tc]","direct-action":true,"not_in_hw":true,"prog":{"id":16642,"name":"pharos_tc","tag":"614b434cd8324ecc","jited":1}}}]';
  t.equal(tcSlotProgId(shown), 16642);
  t.equal(tcSlotProgId('[]'), 0, 'clsact without filters');
  t.equal(tcSlotProgId(''), 0);
  t.equal(tcSlotProgId(shown.replace('"pref":1,"kind":"bpf","chain":0,"options"', '"pref":2,"kind":"bpf","chain":0,"options"')), 0, 'another priority is not our slot');
  t.equal(tcSlotProgId(shown.replace('"handle":"0x1"', '"handle":"0x2"')), 0, 'another handle is not our slot');
});
