import t from 'tap';
import { buildMaglevTable, flowHash, isPrime, maglevSizeFor, murmur3, MaglevError, tableDisruption, DEFAULT_MAGLEV_M, type MaglevMember } from '../../src/datapath/maglev.js';
import { encodeFlow } from '../../src/datapath/abi.js';

function members(n: number, weight = 1): MaglevMember[] {
  return Array.from({ length: n }, (_, i) => ({ key: `10.1.${i >> 8}.${i & 255}|8080`, weight }));
}

function keysOf(table: Int32Array, ms: readonly MaglevMember[]): string[] {
  return [...table].map((i) => ms[i]!.key);
}

function shares(table: Int32Array, n: number): number[] {
  const c = new Array<number>(n).fill(0);
  for (const i of table) c[i]!++;
  return c.map((x) => x / table.length);
}

t.test('murmur3 matches the reference vectors', async (t) => {
  const e = new TextEncoder();
  t.equal(murmur3(e.encode(''), 0), 0);
  t.equal(murmur3(e.encode(''), 1), 0x514e28b7);
  t.equal(murmur3(e.encode('hello'), 0), 0x248bfa47);
  t.equal(murmur3(e.encode('hello, world'), 0x9747b28c), 0x9a933e00);
  t.equal(murmur3(e.encode('The quick brown fox jumps over the lazy dog'), 0x9747b28c), 0x2fa826cd);
});

t.test('every slot is filled and shares are even', async (t) => {
  for (const n of [1, 3, 10, 100]) {
    const ms = members(n);
    const table = buildMaglevTable(ms, maglevSizeFor(n));
    t.notOk(table.includes(-1), `n=${n}: no empty slot`);
    const s = shares(table, n);
    t.ok(Math.max(...s) / Math.min(...s) < 1.05, `n=${n}: max/min share ${(Math.max(...s) / Math.min(...s)).toFixed(3)}`);
  }
});

t.test('same members in a different order give the identical table', async (t) => {
  const ms = members(25);
  const shuffled = [...ms].reverse();
  shuffled.push(shuffled.shift()!);
  const a = keysOf(buildMaglevTable(ms), ms);
  const b = keysOf(buildMaglevTable(shuffled), shuffled);
  t.same(a, b);
});

t.test('removing one of N moves about 1/N of the slots, only from the removed one', async (t) => {
  for (const n of [3, 10, 50]) {
    const ms = members(n);
    const before = keysOf(buildMaglevTable(ms), ms);
    const gone = ms[Math.floor(n / 2)]!.key;
    const rest = ms.filter((m) => m.key !== gone);
    const after = keysOf(buildMaglevTable(rest), rest);
    const moved = tableDisruption(before, after);
    // Slots of the removed backend must move (1/N); Maglev keeps the extra churn small.
    t.ok(moved >= 1 / n - 0.01 && moved <= 2 / n, `n=${n}: moved ${(moved * 100).toFixed(2)}% (1/N = ${(100 / n).toFixed(2)}%)`);
    let movedFromOthers = 0;
    for (let i = 0; i < before.length; i++) if (before[i] !== gone && before[i] !== after[i]) movedFromOthers++;
    t.ok(movedFromOthers / before.length < 1 / n, `n=${n}: slots of surviving backends moved ${movedFromOthers}`);
  }
});

t.test('weights skew shares proportionally', async (t) => {
  const ms: MaglevMember[] = [
    { key: 'a|1', weight: 1 },
    { key: 'b|1', weight: 2 },
    { key: 'c|1', weight: 4 },
  ];
  const s = shares(buildMaglevTable(ms), 3);
  t.ok(Math.abs(s[0]! - 1 / 7) < 0.01, `share a ${s[0]}`);
  t.ok(Math.abs(s[1]! - 2 / 7) < 0.01, `share b ${s[1]}`);
  t.ok(Math.abs(s[2]! - 4 / 7) < 0.01, `share c ${s[2]}`);
});

t.test('M must be prime and > 100 x N; bad input is refused', async (t) => {
  t.ok(isPrime(DEFAULT_MAGLEV_M));
  t.throws(() => buildMaglevTable(members(164)), /too small for 164 backends/, '164 backends do not fit M=16381');
  t.ok(new MaglevError('x') instanceof Error);
  t.doesNotThrow(() => buildMaglevTable(members(163)));
  t.throws(() => buildMaglevTable(members(2), 16383), /not prime/);
  t.throws(() => buildMaglevTable([{ key: 'x', weight: 1 }, { key: 'x', weight: 1 }]), /duplicate/);
  t.throws(() => buildMaglevTable([{ key: 'x', weight: 0 }]), /weight/);
  const m = maglevSizeFor(1000);
  t.ok(isPrime(m) && m > 100_000, `size for 1000 backends: ${m}`);
  t.same([...buildMaglevTable([])].every((x) => x === -1), true, 'no members: empty table');
});

t.test('flowHash is deterministic, seeded, and spreads flows', async (t) => {
  const f = (sport: number) => encodeFlow({ src: '198.18.0.1', dst: '198.51.100.10', sport, dport: 80, proto: 6 });
  t.equal(flowHash(f(1000), 1), flowHash(f(1000), 1));
  t.not(flowHash(f(1000), 1), flowHash(f(1000), 2));
  const buckets = new Array<number>(8).fill(0);
  for (let p = 1000; p < 9000; p++) buckets[flowHash(f(p), 7) % 8]!++;
  t.ok(Math.max(...buckets) < 1150 && Math.min(...buckets) > 850, `buckets ${buckets.join(',')}`);
});
