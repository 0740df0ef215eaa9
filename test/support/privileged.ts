/**
 * Gate for tests that need root, BPF and network namespaces.
 *
 *   const why = privilegedUnavailable();
 *   t.test('real packets', { skip: why }, async (t) => { ... });
 *
 * When CI sets PHAROS_REQUIRE_PRIVILEGED=1 a test that would be skipped
 * fails instead: `privilegedUnavailable` then throws, failing the file.
 */
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

let cached: string | false | undefined;

function probe(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (BPF, network namespaces)';
  if (!existsSync('/sys/fs/bpf')) return 'no /sys/fs/bpf (kernel without BPF?)';
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
  } catch {
    return 'iproute2 `ip netns` not usable';
  }
  return false;
}

/** Returns false when privileged tests can run, or the reason they cannot. */
export function privilegedUnavailable(): string | false {
  if (cached === undefined) cached = probe();
  if (cached && process.env.PHAROS_REQUIRE_PRIVILEGED === '1') {
    throw new Error(`privileged test required (PHAROS_REQUIRE_PRIVILEGED=1) but ${cached}`);
  }
  return cached;
}
