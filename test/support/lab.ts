/**
 * The lab library for tests, in one import: namespaces and processes
 * (src/lab/netns.ts), the echo servers and their clients (src/lab/echo.ts),
 * and the BPF objects of test/support/bpf.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labBpfObject, withLab, type Lab, type TeardownHost } from '../../src/lab/netns.js';
import { loadAddon, type NativeAddon } from '../../src/native/libbpf.js';
import { removePins } from '../../src/datapath/loader.js';

export * from '../../src/lab/netns.js';
export * from '../../src/lab/echo.js';

const SUPPORT_DIR = fileURLToPath(new URL('.', import.meta.url));

/** Compiles test/support/bpf/<name>.bpf.c into build/test/<name>.o (see labBpfObject). */
export function supportBpfObject(name: string): Promise<string> {
  return labBpfObject(join(SUPPORT_DIR, 'bpf', `${name}.bpf.c`), name);
}

/**
 * The lab of a test that loads the data path in-process: its namespaces
 * (withLab), the native addon, and `pinDir` cleared of an earlier run's maps.
 */
export async function withDatapathLab(t: TeardownHost, prefix: string, pinDir: string): Promise<{ lab: Lab; addon: NativeAddon }> {
  const lab = await withLab(t, prefix);
  removePins(pinDir);
  return { lab, addon: loadAddon() };
}
