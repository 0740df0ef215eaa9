/**
 * Where the agent may create its directories, checked before it creates
 * anything: a directory under /proc or /sys (but for a BPF filesystem)
 * cannot be made (Node's recursive mkdir spins at 100% CPU there), and
 * pins only work on a BPF filesystem (elsewhere the kernel says a bare
 * EINVAL, after the directory was left behind).
 */
import { existsSync, statfsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

const BPF_FS_MAGIC = 0xcafe4a11;
const PROC_SUPER_MAGIC = 0x9fa0;
const SYSFS_MAGIC = 0x62656572;
const CGROUP2_MAGIC = 0x63677270;

/** The nearest existing ancestor of `path` (itself if it exists). */
export function existingAncestor(path: string): string {
  let p = resolve(path);
  for (let i = 0; i < 256 && !existsSync(p); i++) p = dirname(p);
  return p;
}

/** Why `path` cannot hold what `flag` needs, or undefined when it can. */
export function directoryProblem(flag: '--pin-dir' | '--state-dir', path: string): string | undefined {
  const at = existingAncestor(path);
  let type: number;
  try {
    type = Number(statfsSync(at).type);
  } catch (err) {
    return `${flag} ${path}: ${(err as Error).message}`;
  }
  if (flag === '--pin-dir') {
    if (type !== BPF_FS_MAGIC) {
      return `--pin-dir ${path} is not on a BPF filesystem (${at} is not): pins need one — mount it (mount -t bpf bpf /sys/fs/bpf) or point --pin-dir into it`;
    }
    return undefined;
  }
  if (type === PROC_SUPER_MAGIC || type === SYSFS_MAGIC || type === CGROUP2_MAGIC || type === BPF_FS_MAGIC) {
    return `--state-dir ${path} is on a kernel filesystem (${at}): give a directory on disk, e.g. /var/lib/pharos`;
  }
  return undefined;
}
