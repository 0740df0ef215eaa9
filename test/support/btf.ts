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

/**
 * max_entries of every map an object declares, by map name, as compiled:
 * `__uint(max_entries, N)` is a member pointing to an array of N elements.
 */
export function btfMapMaxEntries(object: string): Map<string, number> {
  const dump = JSON.parse(execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', object, 'format', 'raw'], { encoding: 'utf8' })) as {
    types: Array<{ id: number; kind: string; name: string; type_id?: number; nr_elems?: number; members?: Array<{ name: string; type_id: number }> }>;
  };
  const byId = new Map(dump.types.map((ty) => [ty.id, ty]));
  const out = new Map<string, number>();
  for (const ty of dump.types) {
    if (ty.kind !== 'VAR') continue;
    const member = byId.get(ty.type_id!)?.members?.find((m) => m.name === 'max_entries');
    const array = member && byId.get(byId.get(member.type_id)?.type_id ?? -1);
    if (array?.kind === 'ARRAY') out.set(ty.name, array.nr_elems!);
  }
  return out;
}
