/**
 * Child of bounds.test.ts: interpretFile on deeply nested texts, in a process
 * of its own, because one bad case can abort Node (see the test). Prints one
 * JSON line per text: { name, ms, problem } or { name, threw }.
 */
import { interpretFile } from '../../src/sources/manifests/interpret.js';

export const DEEP: Record<string, () => string> = {
  'deep-flow.yaml': () => `${'['.repeat(20_000)}${']'.repeat(20_000)}`,
  'deep-flow-5k.yaml': () => `${'['.repeat(5000)}${']'.repeat(5000)}`,
  'deep-block.yaml': () => Array.from({ length: 3000 }, (_, i) => `${' '.repeat(i)}a:`).join('\n'),
  'deep-map.yaml': () => `${'{a: '.repeat(10_000)}1${'}'.repeat(10_000)}`,
  'deep.json': () => `${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}`,
};

for (const name of process.argv.slice(2)) {
  const text = DEEP[name.replace(/^again:/, '')]!();
  const t0 = Date.now();
  try {
    const out = interpretFile(name.replace(/^again:/, ''), text, undefined);
    process.stdout.write(`${JSON.stringify({ name, ms: Date.now() - t0, problem: out.problems[0]?.message ?? null, records: out.records.length })}\n`);
  } catch (err) {
    process.stdout.write(`${JSON.stringify({ name, threw: (err as Error).message })}\n`);
  }
}
