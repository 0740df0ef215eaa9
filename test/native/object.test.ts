/**
 * Native addon, object side: open/configure/load a real BPF object,
 * .rodata and max_entries before load, pinned-map reuse, BPF_PROG_TEST_RUN,
 * and the errors of bad files, bad names and misuse.
 */
import t from 'tap';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { addon, type BpfObject } from '../../src/native/libbpf.js';
import { privilegedUnavailable } from '../support/privileged.js';
import { bpfErrorOf, bpfRejectionOf } from './bpf-error.js';
import { compileTestObject, testFrame } from './test-object.js';
import { ensureBpfObject } from '../../src/datapath/bpf-build.js';

const skip = privilegedUnavailable();
const PIN_DIR = `/sys/fs/bpf/phn-obj-${process.pid}`;
const XDP_DROP = 1;
const XDP_PASS = 2;
const XDP_TX = 3;

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

const compiled = skip ? undefined : compileTestObject();
t.teardown(() => compiled?.cleanup());
const objectPath = compiled?.path ?? '';

/** Opens the test object, lets `configure` run before load, and closes it at teardown. */
function loadTestObject(t: { teardown: (fn: () => void) => void }, configure: (o: BpfObject) => void = () => {}): BpfObject {
  const o = addon().openObject(objectPath);
  t.teardown(() => o.close());
  configure(o);
  o.load();
  return o;
}

function perCpuSum(o: BpfObject, map: string): number {
  const m = o.map(map);
  return m.splitPerCpu(m.lookup(u32(0))!).reduce((sum, v) => sum + Number(v.readBigUInt64LE()), 0);
}

t.test('opening a missing or garbage file fails with a clear error', { skip }, async (t) => {
  let e = bpfErrorOf(() => addon().openObject('/nonexistent/phn.o'));
  t.equal(e.code, 'ENOENT');
  t.match(e.message, 'opening BPF object /nonexistent/phn.o');
  const dir = join(objectPath, '..');
  const garbage = join(dir, 'garbage.o');
  writeFileSync(garbage, Buffer.from('this is not an ELF file at all, just text\n'.repeat(20)));
  e = bpfErrorOf(() => addon().openObject(garbage));
  t.equal(e.code, 'LIBBPF_ERRNO__FORMAT');
  t.match(e.message, garbage);
  t.match(e.message, /not a proper ELF/, 'carries libbpf\'s own line');
  const truncated = join(dir, 'truncated.o');
  writeFileSync(truncated, readFileSync(objectPath).subarray(0, 200));
  e = bpfErrorOf(() => addon().openObject(truncated));
  t.match(e.message, truncated);
  t.ok(e.errno > 0, `truncated ELF: ${e.code}`);
});

t.test('names, types and ids of programs and maps', { skip }, async (t) => {
  const o = addon().openObject(objectPath);
  t.teardown(() => o.close());
  t.same(o.programNames().sort(), ['tc_test', 'xdp_test']);
  t.ok(['runs', 'xdp_seen', 'tc_seen', 'sized'].every((m) => o.mapNames().includes(m)), 'declared maps listed');
  t.ok(o.mapNames().some((m) => m.endsWith('.rodata')), '.rodata listed');
  o.load();
  const xdp = o.program('xdp_test');
  const tc = o.program('tc_test');
  t.match(xdp, { name: 'xdp_test', type: 'xdp' });
  t.match(tc, { name: 'tc_test', type: 'sched_cls' });
  t.ok(xdp.id > 0 && xdp.fd >= 0 && tc.id !== xdp.id);
  const runs = o.map('runs');
  t.match(runs, { name: 'runs', type: 'percpu_array', keySize: 4, valueSize: 8, maxEntries: 1, perCpu: true });
  t.ok(runs.id > 0);
});

t.test('.rodata set before load changes the program verdict', { skip }, async (t) => {
  const frame = testFrame(0x0800);
  const byDefault = loadTestObject(t);
  t.equal(addon().testRun(byDefault.program('xdp_test').fd, { data: frame }).retval, XDP_PASS, 'default verdict');
  for (const verdict of [XDP_DROP, XDP_TX]) {
    const o = loadTestObject(t, (o) => o.setRodata('verdict', u32(verdict)));
    t.equal(addon().testRun(o.program('xdp_test').fd, { data: frame }).retval, verdict, `verdict ${verdict} from .rodata`);
  }
});

t.test('testRun: output bytes, retval, duration, repeat; async variant', { skip }, async (t) => {
  const o = loadTestObject(t, (o) => o.setRodata('swap_macs', Buffer.from([1])));
  const fd = o.program('xdp_test').fd;
  const frame = testFrame(0x86dd, 64);
  const once = addon().testRun(fd, { data: frame });
  t.equal(once.retval, XDP_PASS);
  t.equal(once.dataOut.length, 64, 'output as long as the input');
  const swapped = Buffer.from(frame);
  frame.copy(swapped, 0, 6, 12);
  frame.copy(swapped, 6, 0, 6);
  t.same(once.dataOut, swapped, 'MACs swapped, rest untouched');
  t.same(frame, testFrame(0x86dd, 64), 'input buffer not modified');
  const many = addon().testRun(fd, { data: frame, repeat: 1001 });
  t.same(many.dataOut, swapped, 'data is not reset between repeats: 1001 swaps = 1');
  t.ok(Number.isInteger(many.duration) && many.duration >= 0, `duration ${many.duration} ns/run`);
  t.equal(perCpuSum(o, 'runs'), 1002, 'per-CPU run counter summed over CPUs');
  const seen = o.map('xdp_seen').lookup(u32(0x86dd));
  t.equal(seen?.readBigUInt64LE(), 1002n, 'hash counter by ethertype');

  const async = await addon().testRunAsync(fd, { data: frame, repeat: 3 });
  t.equal(async.retval, XDP_PASS);
  t.same(async.dataOut, swapped);
  t.equal(perCpuSum(o, 'runs'), 1005);

  let e = bpfErrorOf(() => addon().testRun(fd, { data: frame, dataOutSize: 10 }));
  t.equal(e.code, 'ENOSPC');
  t.match(e.message, 'output packet is 64 bytes, more than dataOutSize 10');
  e = bpfErrorOf(() => addon().testRun(fd, { data: Buffer.alloc(10) }));
  t.equal(e.code, 'EINVAL');
  t.match(e.message, 'input is 10 bytes');
  e = await bpfRejectionOf(addon().testRunAsync(fd, { data: Buffer.alloc(10) }));
  t.equal(e.code, 'EINVAL', 'async run rejects with a BpfError');
  e = bpfErrorOf(() => addon().testRun(fd, { data: 'x' as unknown as Buffer }));
  t.match(e.message, 'opts.data must be a Buffer');
  e = bpfErrorOf(() => addon().testRun(9999, { data: frame }));
  t.equal(e.code, 'EBADF', 'not a program fd');
});

t.test('max_entries override before load is visible in map info', { skip }, async (t) => {
  const o = loadTestObject(t, (o) => o.setMaxEntries('sized', 1000));
  const sized = o.map('sized');
  t.equal(sized.maxEntries, 1000);
  t.equal(sized.keys().length, 1000, 'the kernel map really has 1000 slots');
  const e = bpfErrorOf(() => o.setMaxEntries('sized', 5));
  t.equal(e.code, 'EBUSY');
  t.match(e.message, 'already loaded');
});

t.test('setPinPath: a second load reuses the pinned map with its data', { skip }, async (t) => {
  rmSync(PIN_DIR, { recursive: true, force: true });
  mkdirSync(PIN_DIR, { recursive: true });
  t.teardown(() => rmSync(PIN_DIR, { recursive: true, force: true }));
  const pin = `${PIN_DIR}/xdp_seen`;
  const first = addon().openObject(objectPath);
  first.setPinPath('xdp_seen', pin);
  first.load();
  const firstMap = first.map('xdp_seen');
  firstMap.update(u32(0xbeef), Buffer.alloc(8, 1));
  const id = firstMap.id;
  first.close();
  t.equal(firstMap.fd, -1, 'a map taken from a closed object has no fd');
  t.match(bpfErrorOf(() => firstMap.lookup(u32(1))).message, 'is closed');

  const second = loadTestObject(t, (o) => o.setPinPath('xdp_seen', pin));
  const again = second.map('xdp_seen');
  t.equal(again.id, id, 'same kernel map');
  t.same(again.lookup(u32(0xbeef)), Buffer.alloc(8, 1), 'data kept');
  t.equal(addon().openPinnedMap(pin).id, id, 'the pin itself');

  const mismatched = addon().openObject(objectPath);
  t.teardown(() => mismatched.close());
  mismatched.setMaxEntries('xdp_seen', 128);
  mismatched.setPinPath('xdp_seen', pin);
  const e = bpfErrorOf(() => mismatched.load());
  t.equal(e.code, 'EINVAL', 'a different definition cannot reuse the pin');
  t.match(e.message, `loading BPF object ${objectPath}`);
  t.match(e.message, /libbpf: .*reuse/, 'libbpf says why');
});

t.test('a verifier rejection carries the verifier log', { skip }, async (t) => {
  const rejected = compileTestObject('rejected');
  t.teardown(rejected.cleanup);
  const o = addon().openObject(rejected.path);
  t.teardown(() => o.close());
  const e = bpfErrorOf(() => o.load());
  t.equal(e.code, 'EACCES');
  t.match(e.message, `loading BPF object ${rejected.path}`);
  t.match(e.message, /invalid access to packet/, 'the verifier\'s reason');
  t.match(bpfErrorOf(() => o.program('xdp_unchecked')).message, 'not loaded');
});

t.test('bad names and misuse give clear errors', { skip }, async (t) => {
  const o = addon().openObject(objectPath);
  let e = bpfErrorOf(() => o.setRodata('no_such_var', u32(1)));
  t.equal(e.code, 'ENOENT');
  t.match(e.message, 'setRodata(no_such_var)');
  e = bpfErrorOf(() => o.setRodata('verdict', Buffer.alloc(2)));
  t.equal(e.code, 'EINVAL');
  t.match(e.message, 'value is 2 bytes, the variable is 4');
  e = bpfErrorOf(() => o.setMaxEntries('no_such_map', 4));
  t.equal(e.code, 'ENOENT');
  t.match(e.message, /has no map 'no_such_map' \(maps: .*xdp_seen/);
  e = bpfErrorOf(() => o.setPinPath('no_such_map', `${PIN_DIR}/x`));
  t.equal(e.code, 'ENOENT');
  e = bpfErrorOf(() => o.map('xdp_seen'));
  t.match(e.message, 'not loaded yet');
  o.load();
  e = bpfErrorOf(() => o.load());
  t.equal(e.code, 'EBUSY');
  e = bpfErrorOf(() => o.map('no_such_map'));
  t.match(e.message, "has no map 'no_such_map'");
  e = bpfErrorOf(() => o.program('no_such_prog'));
  t.match(e.message, /has no program 'no_such_prog' \(programs: .*xdp_test/);
  e = bpfErrorOf(() => o.setRodata('verdict', u32(1)));
  t.equal(e.code, 'EBUSY', 'after load');
  const prog = o.program('xdp_test');
  const map = o.map('tc_seen');
  o.close();
  o.close();
  t.equal(prog.fd, -1, 'program fd gone with its object');
  t.match(bpfErrorOf(() => prog.pin(`${PIN_DIR}/p`)).message, 'its object is closed');
  t.match(bpfErrorOf(() => map.entries()).message, `its object ${objectPath} is closed`);
  map.close();
  t.match(bpfErrorOf(() => o.mapNames()).message, 'is closed');
});

t.test('testRunAsync: an AbortSignal stops a long run; the event loop stays free', { skip }, async (t) => {
  const o = loadTestObject(t);
  const fd = o.program('xdp_test').fd;
  const frame = testFrame(0x0800);
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 10);
  t.teardown(() => clearInterval(ticker));
  const started = Date.now();
  // ~2^31 runs would take minutes: only the abort ends it.
  const run = addon().testRunAsync(fd, { data: frame, repeat: 2 ** 31 - 1, signal: AbortSignal.timeout(300) });
  const result = await run;
  const elapsed = Date.now() - started;
  t.equal(result.interrupted, true, 'reported as interrupted');
  t.equal(result.dataOut.length, 0, 'no output from an interrupted run');
  t.ok(elapsed >= 250 && elapsed < 5000, `stopped after ${elapsed} ms`);
  t.ok(ticks >= 5, `timers kept firing during the run (${ticks} ticks)`);
  const ran = perCpuSum(o, 'runs');
  t.ok(ran > 1000 && ran < 2 ** 31 - 1, `${ran} runs before the abort`);

  const controller = new AbortController();
  controller.abort();
  const before = perCpuSum(o, 'runs');
  const early = await addon().testRunAsync(fd, { data: frame, repeat: 1000, signal: controller.signal });
  t.equal(early.interrupted, true, 'an already aborted signal does not run');
  t.equal(perCpuSum(o, 'runs'), before);
  const normal = await addon().testRunAsync(fd, { data: frame, repeat: 10, signal: new AbortController().signal });
  t.equal(normal.interrupted, undefined, 'a run that completes is not marked');
  t.equal(perCpuSum(o, 'runs'), before + 10);
});

t.test('loadAsync: the verifier runs on a worker thread while the event loop keeps going', { skip }, async (t) => {
  // The data path's own object: its verification takes long enough to see the loop turn meanwhile.
  const o = addon().openObject(ensureBpfObject('lb'));
  t.teardown(() => o.close());
  let ticks = 0;
  const timer = setInterval(() => { ticks++; }, 5);
  const started = performance.now();
  const loading = o.loadAsync();
  const busy = bpfErrorOf(() => o.map('ph_frontends'));
  t.equal(busy.code, 'EBUSY', 'the object is the worker\'s while it loads');
  t.match(busy.message, /being loaded/);
  await loading;
  clearInterval(timer);
  const ms = performance.now() - started;
  t.ok(ticks > 0, `${ticks} timer ticks during a ${ms.toFixed(0)} ms load`);
  t.ok(o.map('ph_frontends').maxEntries > 0, 'loaded: its maps are usable');
  const again = bpfErrorOf(() => void o.loadAsync());
  t.equal(again.code, 'EBUSY', 'a second load is refused at once');
  t.match(again.message, /already loaded/);

  const closing = addon().openObject(objectPath);
  const p = closing.loadAsync();
  closing.close();
  const e = await bpfRejectionOf(p);
  t.match(e.message, /closed while loading/, 'a close during the load happens when it ends');
});
