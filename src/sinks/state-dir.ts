/**
 * Writes to --state-dir, where manifests mode keeps what survives a restart
 * but is in no manifest (IPAM allocations, first-seen times): whole files,
 * replaced atomically.
 */
import { mkdir, open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Distinguishes concurrent writes of one file by this process. */
let tempCounter = 0;

/** temp file + fsync + rename: a crash leaves the old or the new file, never half of one. */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.tmp-${process.pid}-${++tempCounter}`;
  const handle = await open(temp, 'w', 0o600);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, path);
}
