/** Address, CIDR and range arithmetic (src/model/cidr.ts), and the selector semantics (src/model/selector.ts). */
import t from 'tap';
import fc from 'fast-check';
import { IntervalSet, formatAddress, parseAddress, parseBlock, parseCidr, parseRange, canonicalAddress, familyMax } from '../../src/model/cidr.js';
import { matchesSelector, validateSelector } from '../../src/model/selector.js';
import type { LabelSelector } from '../../src/model/types.js';

t.test('addresses parse to BigInt and print canonically (RFC 5952 for IPv6)', async (t) => {
  const rows: [string, string, bigint][] = [
    ['0.0.0.0', '0.0.0.0', 0n],
    ['192.0.2.1', '192.0.2.1', 0xc0000201n],
    ['255.255.255.255', '255.255.255.255', 0xffffffffn],
    ['::', '::', 0n],
    ['::1', '::1', 1n],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1', 0x20010db8000000000000000000000001n],
    ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1', 0x20010db8000000010000000000000001n],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1', 0x20010db8000000000001000000000001n],
    ['2001:db8::1:0', '2001:db8::1:0', 0x20010db8000000000000000000010000n],
    ['2001:0:1:1:1:1:1:1', '2001:0:1:1:1:1:1:1', 0x20010000000100010001000100010001n],
    ['::ffff:192.0.2.1', '::ffff:c000:201', 0xffffc0000201n],
    ['fe80::', 'fe80::', 0xfe800000000000000000000000000000n],
  ];
  for (const [text, canonical, value] of rows) {
    const parsed = parseAddress(text, 'f');
    t.ok(parsed.ok, text);
    if (!parsed.ok) continue;
    t.equal(parsed.value.value, value, `${text} value`);
    t.equal(formatAddress(parsed.value.family, parsed.value.value), canonical, `${text} prints as ${canonical}`);
    t.equal(canonicalAddress(text), canonical);
  }
});

t.test('malformed addresses, CIDRs and ranges are refused with the field named', async (t) => {
  const bad: [string, RegExp][] = [
    ['', /required/],
    ['1.2.3', /four dot-separated octets/],
    ['1.2.3.256', /larger than 255/],
    ['010.0.0.1', /leading zeros/],
    ['1.2.3.4 5', /not a decimal/],
    ['2001:db8::1::2', /"::" only once/],
    ['2001:db8:1:2:3:4:5:6:7', /eight groups/],
    ['2001:db8:12345::', /1-4 hexadecimal/],
    ['fe80::1%eth0', /zone/],
    ['1.2.3.4::', /1-4 hexadecimal|embedded IPv4/],
  ];
  for (const [text, why] of bad) {
    const r = parseAddress(text, 'spec.x');
    t.match(r, { ok: false, error: { field: 'spec.x', message: why } }, JSON.stringify(text));
  }
  t.match(parseCidr('192.0.2.0', 'spec.blocks[0].cidr'), { ok: false, error: { field: 'spec.blocks[0].cidr', message: /missing "\/prefix-length"/ } });
  t.match(parseCidr('192.0.2.0/33', 'f'), { ok: false, error: { message: /0-32 for IPv4/ } });
  t.match(parseCidr('2001:db8::/129', 'f'), { ok: false, error: { message: /0-128 for IPv6/ } });
  t.match(parseCidr('192.0.2.0/024', 'f'), { ok: false });
  t.match(parseCidr('300.0.2.0/24', 'f'), { ok: false, error: { message: /is not a CIDR: .*larger than 255/ } });
  t.match(parseRange('192.0.2.9', '192.0.2.1', 'spec.blocks[3]'), { ok: false, error: { field: 'spec.blocks[3].stop', message: /comes before start/ } });
  t.match(parseRange('192.0.2.1', '2001:db8::1', 'spec.blocks[3]'), { ok: false, error: { field: 'spec.blocks[3].stop', message: /one family/ } });
  t.match(parseRange('nope', '192.0.2.1', 'spec.blocks[3]'), { ok: false, error: { field: 'spec.blocks[3].start' } });
});

t.test('CIDRs and ranges become inclusive BigInt ranges; host bits are masked', async (t) => {
  t.match(parseCidr('192.0.2.77/24', 'f'), { ok: true, value: { family: 'IPv4', first: 0xc0000200n, last: 0xc00002ffn, prefixLength: 24 } });
  t.match(parseCidr('0.0.0.0/0', 'f'), { ok: true, value: { first: 0n, last: 0xffffffffn } });
  t.match(parseCidr('2001:db8::/64', 'f'), { ok: true, value: { family: 'IPv6', first: 0x20010db8000000000000000000000000n, last: 0x20010db800000000ffffffffffffffffn } });
  t.match(parseCidr('::/0', 'f'), { ok: true, value: { first: 0n, last: familyMax('IPv6') } });
  t.match(parseBlock({ start: '192.0.2.5', stop: '' }, 'spec.blocks[0]'), { ok: true, value: { first: 0xc0000205n, last: 0xc0000205n } });
  t.match(parseBlock({ cidr: 'x' }, 'spec.blocks[2]'), { ok: false, error: { field: 'spec.blocks[2].cidr' } });
});

t.test('formatting and parsing are inverse for every value (property)', async (t) => {
  fc.assert(
    fc.property(fc.bigInt({ min: 0n, max: familyMax('IPv6') }), fc.bigInt({ min: 0n, max: familyMax('IPv4') }), (v6, v4) => {
      const a = parseAddress(formatAddress('IPv6', v6), 'f');
      const b = parseAddress(formatAddress('IPv4', v4), 'f');
      return a.ok && a.value.value === v6 && a.value.family === 'IPv6' && b.ok && b.value.value === v4 && b.value.family === 'IPv4';
    }),
    { numRuns: 2000 },
  );
  t.pass('round trips');
});

t.test('IntervalSet agrees with a plain set under random operations (property)', async (t) => {
  const op = fc.oneof(
    fc.record({ kind: fc.constant('addRange' as const), a: fc.integer({ min: 0, max: 60 }), n: fc.integer({ min: 0, max: 8 }) }),
    fc.record({ kind: fc.constant('delete' as const), a: fc.integer({ min: 0, max: 70 }) }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const set = new IntervalSet();
      const plain = new Set<number>();
      for (const o of ops) {
        if (o.kind === 'addRange') {
          set.addRange(BigInt(o.a), BigInt(o.a + o.n));
          for (let i = o.a; i <= o.a + o.n; i++) plain.add(i);
        } else if (set.delete(BigInt(o.a)) !== plain.delete(o.a)) return false;
      }
      if (set.size !== BigInt(plain.size)) return false;
      const sorted = [...plain].sort((x, y) => x - y);
      if (set.min() !== (sorted.length ? BigInt(sorted[0]!) : undefined)) return false;
      for (let i = 0; i <= 72; i++) {
        if (set.has(BigInt(i)) !== plain.has(i)) return false;
        const ceiling = sorted.find((x) => x >= i);
        if (set.ceiling(BigInt(i)) !== (ceiling === undefined ? undefined : BigInt(ceiling))) return false;
      }
      // Intervals are disjoint and not adjacent (always merged).
      const iv = set.intervals();
      return iv.every((r, i) => r.first <= r.last && (i === 0 || iv[i - 1]!.last + 1n < r.first));
    }),
    { numRuns: 500 },
  );
  t.pass('agrees');
  const huge = IntervalSet.of([{ first: 0n, last: 2n ** 64n - 1n }]);
  huge.delete(5n);
  t.equal(huge.size, 2n ** 64n - 1n, 'a /64 costs two intervals, not 2^64 entries');
  t.equal(huge.intervalCount, 2);
});

t.test('label selectors: matchLabels and In/NotIn/Exists/DoesNotExist', async (t) => {
  const sel = (s: Partial<LabelSelector>): LabelSelector => ({ matchLabels: s.matchLabels ?? {}, matchExpressions: s.matchExpressions ?? [] });
  const rows: [string, LabelSelector, Record<string, string>, boolean][] = [
    ['empty selector matches all', sel({}), { a: '1' }, true],
    ['matchLabels equal', sel({ matchLabels: { color: 'blue' } }), { color: 'blue', x: 'y' }, true],
    ['matchLabels differ', sel({ matchLabels: { color: 'blue' } }), { color: 'red' }, false],
    ['matchLabels missing', sel({ matchLabels: { color: 'blue' } }), {}, false],
    ['In', sel({ matchExpressions: [{ key: 'color', operator: 'In', values: ['blue', 'cyan'] }] }), { color: 'cyan' }, true],
    ['In, other value', sel({ matchExpressions: [{ key: 'color', operator: 'In', values: ['blue', 'cyan'] }] }), { color: 'red' }, false],
    ['In, missing key', sel({ matchExpressions: [{ key: 'color', operator: 'In', values: ['blue'] }] }), {}, false],
    ['NotIn, missing key matches', sel({ matchExpressions: [{ key: 'color', operator: 'NotIn', values: ['blue'] }] }), {}, true],
    ['NotIn, listed value', sel({ matchExpressions: [{ key: 'color', operator: 'NotIn', values: ['blue'] }] }), { color: 'blue' }, false],
    ['Exists', sel({ matchExpressions: [{ key: 'org', operator: 'Exists', values: [] }] }), { org: '' }, true],
    ['Exists, missing', sel({ matchExpressions: [{ key: 'org', operator: 'Exists', values: [] }] }), {}, false],
    ['DoesNotExist', sel({ matchExpressions: [{ key: 'org', operator: 'DoesNotExist', values: [] }] }), {}, true],
    ['DoesNotExist, present', sel({ matchExpressions: [{ key: 'org', operator: 'DoesNotExist', values: [] }] }), { org: 'x' }, false],
    ['all must hold', sel({ matchLabels: { a: '1' }, matchExpressions: [{ key: 'b', operator: 'Exists', values: [] }] }), { a: '1' }, false],
    ['unknown operator matches nothing', sel({ matchExpressions: [{ key: 'a', operator: 'Near' as never, values: [] }] }), { a: '1' }, false],
    ['inherited property names are not labels', sel({ matchExpressions: [{ key: 'toString', operator: 'Exists', values: [] }] }), {}, false],
  ];
  for (const [name, selector, labels, want] of rows) t.equal(matchesSelector(selector, labels), want, name);
});

t.test('selector validation names each bad field', async (t) => {
  const errors = validateSelector(
    {
      matchLabels: { 'bad key!': 'v', good: 'bad value!' },
      matchExpressions: [
        { key: 'a', operator: 'Near' as never, values: [] },
        { key: 'b', operator: 'In', values: [] },
        { key: 'c', operator: 'Exists', values: ['x'] },
        { key: 'd', operator: 'NotIn', values: ['ok', '-bad'] },
      ],
    },
    'spec.serviceSelector',
  );
  t.same(
    errors.map((e) => e.field),
    [
      'spec.serviceSelector.matchLabels["bad key!"]',
      'spec.serviceSelector.matchLabels["good"]',
      'spec.serviceSelector.matchExpressions[0].operator',
      'spec.serviceSelector.matchExpressions[1].values',
      'spec.serviceSelector.matchExpressions[2].values',
      'spec.serviceSelector.matchExpressions[3].values[1]',
    ],
  );
  t.match(errors[2]!.message, /"Near" is not a selector operator/);
  t.same(validateSelector({ matchLabels: { 'lb.pharos.io/x': 'y' }, matchExpressions: [{ key: 'k', operator: 'In', values: ['v'] }] }, 's'), []);
});
