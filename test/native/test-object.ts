/**
 * Compiles the test-only BPF under test/native/bpf/ into a temporary
 * directory, with the product's own clang flags.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clangArgs } from '../../src/datapath/bpf-build.js';

const SOURCE_DIR = join(dirname(fileURLToPath(import.meta.url)), 'bpf');

/** Compiles bpf/<name>.bpf.c; returns the object path and a cleanup removing the temp dir. */
export function compileTestObject(name = 'addon_test'): { path: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'phn-bpf-'));
  const path = join(dir, `${name}.o`);
  try {
    execFileSync('clang', clangArgs(join(SOURCE_DIR, `${name}.bpf.c`), path), { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`clang failed on ${name}.bpf.c: ${stderr || (err as Error).message}`);
  }
  return { path, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A 60-byte Ethernet frame with the given ethertype and MACs 02:..:01 <- 02:..:02. */
export function testFrame(ethertype: number, length = 60): Buffer {
  const frame = Buffer.alloc(length);
  Buffer.from('020000000001' + '020000000002', 'hex').copy(frame, 0);
  frame.writeUInt16BE(ethertype, 12);
  for (let i = 14; i < length; i++) frame[i] = i & 0xff;
  return frame;
}
