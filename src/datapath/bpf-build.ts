/**
 * Compiles the BPF programs in bpf/ into objects under build/bpf/.
 *
 * The product compiles its own programs: `npm run build` calls this, and
 * the agent calls `ensureBpfObject` at start so a source newer than its
 * object (or a missing object) is rebuilt before loading. The compile flags
 * live only here.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root: dist/datapath/ or src/datapath/ → ../.. */
export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BPF_SOURCE_DIR = join(PROJECT_ROOT, 'bpf');
export const BPF_BUILD_DIR = join(PROJECT_ROOT, 'build', 'bpf');

/** Debian puts asm/ headers under the multiarch include dir; -target bpf does not look there. */
const MULTIARCH_INCLUDE = '/usr/include/x86_64-linux-gnu';

/** Target, warnings and include paths every BPF compile uses (headers are included as "lib/<name>.h"). */
export const CLANG_FLAGS: readonly string[] = [
  '-target', 'bpf',
  '-O2', '-g',
  '-Wall', '-Werror', '-Wno-unused-function',
  '-I', MULTIARCH_INCLUDE,
  '-I', BPF_SOURCE_DIR,
];

export function clangArgs(source: string, object: string): string[] {
  return [...CLANG_FLAGS, '-c', source, '-o', object];
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else if (/\.(c|h)$/.test(entry.name)) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

export class BpfBuildError extends Error {}

/**
 * Returns the path of `build/bpf/<name>.o`, compiling `bpf/<name>.bpf.c`
 * first when the object is missing or older than any file under bpf/.
 */
export function ensureBpfObject(name: string, opts: { force?: boolean; log?: (msg: string) => void } = {}): string {
  const source = join(BPF_SOURCE_DIR, `${name}.bpf.c`);
  const object = join(BPF_BUILD_DIR, `${name}.o`);
  if (!existsSync(source)) throw new BpfBuildError(`BPF source ${source} not found`);
  const stale = opts.force || !existsSync(object) || statSync(object).mtimeMs < newestMtime(BPF_SOURCE_DIR);
  if (!stale) return object;
  mkdirSync(BPF_BUILD_DIR, { recursive: true });
  opts.log?.(`compiling ${source} -> ${object}`);
  try {
    execFileSync('clang', clangArgs(source, object), { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    if (e.code === 'ENOENT') {
      throw new BpfBuildError('clang not found: install clang (apt-get install clang llvm libbpf-dev) to compile the BPF programs');
    }
    throw new BpfBuildError(`compiling ${source} failed:\n${e.stderr?.toString() ?? e.message}`);
  }
  return object;
}

/** Every `bpf/*.bpf.c` program name. */
export function bpfProgramNames(): string[] {
  return readdirSync(BPF_SOURCE_DIR)
    .filter((f) => f.endsWith('.bpf.c'))
    .map((f) => f.slice(0, -'.bpf.c'.length))
    .sort();
}

// `node dist/datapath/bpf-build.js [--force]` builds every program (npm run build:bpf).
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const force = process.argv.includes('--force');
  try {
    for (const name of bpfProgramNames()) ensureBpfObject(name, { force, log: (m) => console.error(m) });
  } catch (err) {
    console.error(`pharos: ${(err as Error).message}`);
    process.exit(1);
  }
}
