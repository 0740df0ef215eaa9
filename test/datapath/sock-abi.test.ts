/**
 * The socket LB's TypeScript side against its C (bpf/lib/sock_maps.h,
 * bpf/sock.bpf.c): counter enum, map names, struct layouts from the
 * compiled object's BTF, hook → program table; and the pure helpers of
 * src/datapath/socket-lb.ts (cgroup v2 mount discovery).
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BPF_SOURCE_DIR, ensureBpfObject } from '../../src/datapath/bpf-build.js';
import { SOCK_MAP, SOCK_SIZE, SOCK_STAT_REASONS, SIZE, addrBytes, decodeSockRev } from '../../src/datapath/abi.js';
import { cgroup2Mount, DEFAULT_SOCKET_LB_SIZES, linkPinPath, SOCK_HOOKS, SOCK_SHARED } from '../../src/datapath/socket-lb.js';
import { btfMapMaxEntries, btfStructs } from '../support/btf.js';

const header = (): string => readFileSync(join(BPF_SOURCE_DIR, 'lib', 'sock_maps.h'), 'utf8');


t.test('ph_sock_stat in sock_maps.h equals SOCK_STAT_REASONS', async (t) => {
  const entries = [...header().matchAll(/^\s*PH_SOCK_STAT_([A-Z0-9_]+)\s*=\s*(\d+),/gm)].map((m) => [m[1]!.toLowerCase(), Number(m[2])] as const);
  const reasons = entries.filter(([n]) => n !== 'max');
  t.same(reasons.map(([, v]) => v), reasons.map((_, i) => i), 'values are 0..n-1 in order');
  t.same(reasons.map(([n]) => n), [...SOCK_STAT_REASONS]);
  t.equal(entries.find(([n]) => n === 'max')?.[1], SOCK_STAT_REASONS.length, 'PH_SOCK_STAT_MAX');
});

t.test('map names in sock_maps.h equal SOCK_MAP and fit 15 chars', async (t) => {
  const names = [...header().matchAll(/^\}\s*(ph_\w+)\s+SEC\("\.maps"\)/gm)].map((m) => m[1]!).sort();
  t.same(names, Object.values(SOCK_MAP).sort());
  for (const n of names) t.ok(n.length <= 15, `${n} ≤ 15 chars`);
});

t.test('max_entries in sock_maps.h are the socket LB\'s default sizes', async (t) => {
  const declared = btfMapMaxEntries(ensureBpfObject('sock'));
  t.equal(declared.get(SOCK_MAP.reverse), DEFAULT_SOCKET_LB_SIZES.reverse);
  t.equal(declared.get(SOCK_MAP.affinity), DEFAULT_SOCKET_LB_SIZES.affinity);
  t.equal(declared.get(SOCK_MAP.stats), SOCK_STAT_REASONS.length);
});

t.test('struct layouts in the compiled sock object match SOCK_SIZE and decodeSockRev', async (t) => {
  const structs = btfStructs(ensureBpfObject('sock'));
  const key = structs.get('ph_sock_rev_key')!;
  const value = structs.get('ph_sock_rev_value')!;
  t.equal(key.size, SOCK_SIZE.revKey);
  t.equal(value.size, SOCK_SIZE.revValue);
  t.equal(structs.get('ph_sock_aff_key')!.size, SOCK_SIZE.affKey);
  t.equal(structs.get('ph_aff_value')!.size, SIZE.affValue, 'the affinity value is maps.h\'s');
  t.same(key.offsets, { cookie: 0, addr: 8, port: 24, family: 26, pad: 27 });
  t.same(value.offsets, { addr: 0, port: 16, family: 18, pad: 19, frontend_id: 20 });

  // An entry laid out at the BTF offsets decodes to what was written.
  const k = Buffer.alloc(key.size);
  k.writeBigUInt64LE(0x1122334455667788n, key.offsets.cookie!);
  addrBytes('2001:db8:11::2').copy(k, key.offsets.addr!);
  k.writeUInt16BE(8080, key.offsets.port!);
  k.writeUInt8(10, key.offsets.family!);
  const v = Buffer.alloc(value.size);
  addrBytes('198.51.100.10').copy(v, value.offsets.addr!);
  v.writeUInt16BE(80, value.offsets.port!);
  v.writeUInt8(2, value.offsets.family!);
  v.writeUInt32LE(7, value.offsets.frontend_id!);
  t.same(decodeSockRev(k, v), { cookie: 0x1122334455667788n, backend: '2001:db8:11::2', backendPort: 8080, service: '198.51.100.10', servicePort: 80, frontendId: 7 });
});

t.test('every hook has its program, in the section of the same name', async (t) => {
  const src = readFileSync(join(BPF_SOURCE_DIR, 'sock.bpf.c'), 'utf8');
  const sections = [...src.matchAll(/SEC\("cgroup\/(\w+)"\)\s*\nint (\w+)\(/g)].map((m) => ({ hook: m[1], program: m[2] }));
  t.same([...sections].sort((a, b) => a.hook!.localeCompare(b.hook!)), [...SOCK_HOOKS].sort((a, b) => a.hook.localeCompare(b.hook)));
  t.same([...SOCK_SHARED].sort(), ['backends', 'frontends', 'maglev', 'members'], 'the XDP maps used (no conntrack/reverse NAT)');
  t.equal(linkPinPath('/run/pharos/bpffs/n1', 'connect4'), '/run/pharos/bpffs/n1/sock_link_connect4');
});

const HYBRID = `22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 22 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
`;
const UNIFIED = `25 1 0:23 / /sys rw,nosuid shared:2 - sysfs sysfs rw
28 25 0:25 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`;
// In a container with its own cgroup namespace: /sys/fs/cgroup is the pod's subtree; the host's is bind-mounted elsewhere.
const CONTAINER = `700 690 0:25 /kubepods/burstable/pod1/abc /sys/fs/cgroup ro,nosuid - cgroup2 cgroup rw
701 690 0:25 / /run/pharos/cgroup\\040v2 rw,nosuid - cgroup2 cgroup2 rw
`;

t.test('cgroup2Mount finds the cgroup v2 root in /proc/self/mountinfo', async (t) => {
  t.equal(cgroup2Mount(HYBRID), '/sys/fs/cgroup/unified', 'hybrid hierarchy');
  t.equal(cgroup2Mount(UNIFIED), '/sys/fs/cgroup', 'unified hierarchy');
  t.equal(cgroup2Mount(CONTAINER), '/run/pharos/cgroup v2', 'a mount of a subtree is skipped; octal escapes decoded');
  t.equal(cgroup2Mount('30 22 0:26 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n'), undefined, 'v1 only');
  t.equal(cgroup2Mount(''), undefined);
  t.equal(cgroup2Mount('garbage line\n- \n'), undefined, 'malformed lines are ignored');
});
