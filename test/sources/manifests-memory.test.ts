/**
 * What the manifests source keeps of a file is the objects, not the file:
 * the yaml parser's scalars are views into the file's text (V8 slices of 13
 * characters or more), so one kept endpoint address or `EndpointSlice` kind
 * would keep its whole file in memory (10 MB of text at 10,000 services).
 * Measured in a child Node with --expose-gc: 40 files of ~256 KB each, one
 * long scalar per object kept, the texts dropped, a full GC; what is still
 * on the heap must be far less than the texts.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../src/datapath/bpf-build.js';

const interpret = join(PROJECT_ROOT, 'dist', 'sources', 'manifests', 'interpret.js');

const child = `
import { interpretFile } from ${JSON.stringify(interpret)};
const FILES = 40, PAD = 256 * 1024;
const slice = (i) => \`apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: svc-\${i}-abcde, namespace: bench, labels: { kubernetes.io/service-name: svc-\${i} } }
addressType: IPv4
endpoints:
  - addresses: ["198.18.128.\${100 + i}"]
ports: [{ port: 8080 }]
# \${'x'.repeat(PAD)}
\`;
interpretFile('warm.yaml', slice(999), undefined); // the parser's code and caches, before measuring
gc(); const before = process.memoryUsage().heapUsed;
const kept = [];
for (let i = 0; i < FILES; i++) kept.push(interpretFile(\`s\${i}.yaml\`, slice(i), undefined).records);
gc(); const after = process.memoryUsage().heapUsed;
const objects = kept.flat().length;
console.log(JSON.stringify({ objects, retainedBytes: after - before, textBytes: FILES * PAD }));
`;

t.test('interpreted objects do not keep their file text alive', (t) => {
  const out = execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', child], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  const r = JSON.parse(out.trim().split('\n').at(-1)!) as { objects: number; retainedBytes: number; textBytes: number };
  t.equal(r.objects, 40, 'every file gave its object');
  t.ok(r.retainedBytes < r.textBytes / 10, `heap kept ${(r.retainedBytes / 1048576).toFixed(2)} MiB for ${(r.textBytes / 1048576).toFixed(1)} MiB of text (must be < 10%)`);
  t.end();
});
