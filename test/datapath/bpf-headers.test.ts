/**
 * Every header in bpf/lib is self-contained: it compiles as the only
 * include of an empty file, in both builds (XDP, and tc with
 * PH_TC_INGRESS). A header that uses a helper, map or constant without
 * including the header that defines it (as icmp_nat.h once needed
 * count_and() from the middle of lb.bpf.c) fails here with the name.
 * One clang run per build (-fsyntax-only), about a second each.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BPF_SOURCE_DIR, CLANG_FLAGS } from '../../src/datapath/bpf-build.js';

const run = promisify(execFile);
const headers = readdirSync(join(BPF_SOURCE_DIR, 'lib')).filter((f) => f.endsWith('.h')).sort();

t.test('each bpf/lib header compiles on its own', async (t) => {
  t.ok(headers.length >= 15, `${headers.length} headers`);
  const dir = mkdtempSync(join(tmpdir(), 'pharos-bpf-headers-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const units = headers.map((h) => {
    const unit = join(dir, `${h.replace(/\.h$/, '')}.c`);
    writeFileSync(unit, `#include "lib/${h}"\n`);
    return unit;
  });
  for (const [build, defines] of [['XDP', []], ['tc', ['-DPH_TC_INGRESS=1']]] as const) {
    const errors = await run('clang', [...CLANG_FLAGS, ...defines, '-fsyntax-only', ...units]).then(() => '', (err: { stderr?: string }) => err.stderr ?? String(err));
    t.equal(errors, '', `${build} build: every header includes what it uses`);
  }
});
