/**
 * Struct layouts of a compiled BPF object, read from its BTF with bpftool:
 * what the ABI tests hold the TypeScript codecs against.
 */
import { execFileSync } from 'node:child_process';

export interface BtfStruct { size: number; offsets: Record<string, number> }

/** Every `ph_*` struct of `object`: size and member byte offsets. */
export function btfStructs(object: string): Map<string, BtfStruct> {
  const dump = JSON.parse(execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', object, 'format', 'raw'], { encoding: 'utf8' })) as {
    types: Array<{ kind: string; name: string; size?: number; members?: Array<{ name: string; bits_offset: number }> }>;
  };
  const out = new Map<string, BtfStruct>();
  for (const ty of dump.types) {
    if (ty.kind !== 'STRUCT' || !ty.name.startsWith('ph_')) continue;
    out.set(ty.name, { size: ty.size!, offsets: Object.fromEntries(ty.members!.map((m) => [m.name, m.bits_offset / 8])) });
  }
  return out;
}
