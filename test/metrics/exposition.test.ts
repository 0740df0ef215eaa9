/**
 * The hand-written exposition text (src/metrics/exposition.ts): escaping per
 * the format, family headers, sample values as Prometheus parses them, and
 * the byte writer the data-path families go through.
 */
import t from 'tap';
import { EncodedStrings, ExpositionWriter, escapeHelp, escapeLabelValue, familyHeader, formatValue, labelSet } from '../../src/metrics/exposition.js';
import { parseExposition } from '../support/prom.js';

t.test('label values escape backslash, newline and double quote; HELP escapes backslash and newline only', async (t) => {
  t.equal(escapeLabelValue('plain/svc:80'), 'plain/svc:80');
  t.equal(escapeLabelValue('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
  t.equal(escapeHelp('a "quoted" \\ help\nline'), 'a "quoted" \\\\ help\\nline');
  t.equal(labelSet([]), '');
  t.equal(labelSet([['service', 'ns/a"b'], ['frontend', '198.51.100.1:80/TCP']]), '{service="ns/a\\"b",frontend="198.51.100.1:80/TCP"}');
  t.equal(familyHeader('x_total', 'Line one\nline two', 'counter'), '# HELP x_total Line one\\nline two\n# TYPE x_total counter\n');
});

t.test('values: integers in full, specials as Prometheus spells them', async (t) => {
  t.equal(formatValue(0), '0');
  t.equal(formatValue(2 ** 53), '9007199254740992');
  t.equal(formatValue(0.25), '0.25');
  t.equal(formatValue(Infinity), '+Inf');
  t.equal(formatValue(-Infinity), '-Inf');
  t.equal(formatValue(NaN), 'NaN');
});

t.test('the writer writes the same digits as String() across the integer fast path and beyond', async (t) => {
  const values = [0, 1, 9, 10, 99, 100, 123456789, 999999999, 1e9, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, 2 ** 53, 1e21, 0.5, -1, -0, NaN, Infinity];
  const labels = new EncodedStrings(values.map((_, i) => `{i="${i}"}`));
  const w = new ExpositionWriter();
  const name = Buffer.from('v');
  values.forEach((v, i) => w.sample(name, labels, i, v));
  const text = Buffer.concat(w.finish()).toString();
  t.equal(text, values.map((v, i) => `v{i="${i}"} ${formatValue(v)}\n`).join(''));
  const parsed = parseExposition(`# HELP v values\n# TYPE v gauge\n${text}`).get('v')!.samples.map((s) => s.value);
  t.same(parsed.map(String), values.map((v) => String(Object.is(v, -0) ? 0 : v)), 'Prometheus-style parsing reads back every value');
});

t.test('encoded strings: offsets by bytes, also for non-ASCII label values', async (t) => {
  const ascii = new EncodedStrings(['{a="x"}', '', '{b="yz"}']);
  t.same([...ascii.starts], [0, 7, 7, 15]);
  t.equal(ascii.bytes.toString(), '{a="x"}{b="yz"}');
  t.equal(ascii.maxBytes(), 8);
  const utf8 = new EncodedStrings(['{s="café"}', '{s="ü"}']);
  t.equal(utf8.starts[1], Buffer.byteLength('{s="café"}'));
  const w = new ExpositionWriter();
  w.sample(Buffer.from('m'), utf8, 1, 3);
  w.sample(Buffer.from('m'), utf8, 0, 4);
  t.equal(Buffer.concat(w.finish()).toString(), 'm{s="ü"} 3\nm{s="café"} 4\n');
});

t.test('chunks: no line is split, and the total is every byte written', async (t) => {
  const labels = new EncodedStrings(Array.from({ length: 500 }, (_, i) => `{backend="198.51.100.${i % 256}:${8000 + i}"}`));
  const w = new ExpositionWriter(256);
  const name = Buffer.from('pharos_datapath_backend_packets_total');
  for (let i = 0; i < 500; i++) w.sample(name, labels, i, i * 1000);
  const size = w.size;
  const chunks = w.finish();
  t.ok(chunks.length > 10, `${chunks.length} chunks`);
  t.ok(chunks.every((c) => c.length <= 256 && c[c.length - 1] === 0x0a), 'each chunk ends at a line end');
  t.equal(Buffer.concat(chunks).length, size);
  t.equal(Buffer.concat(chunks).toString().split('\n').length, 501);
});
