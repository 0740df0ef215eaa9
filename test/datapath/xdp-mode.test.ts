/**
 * --xdp-mode auto per interface (src/datapath/xdp-mode.ts): native where a
 * device backs the interface, tc ingress on veth and other virtual devices;
 * sysfs read as the kernel lays it out (a fake tree here; the agent's lab
 * tests and the demo run it on real veths).
 */
import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { chooseXdpMode, interfaceFacts } from '../../src/datapath/xdp-mode.js';

t.test('choices and reasons', async (t) => {
  t.match(chooseXdpMode('auto', { name: 'eth0', virtual: true }), { mode: 'tc', reason: /virtual device.*tc ingress.*XDP_TX.*checksums.*generic XDP drops TCP sent with GSO/ });
  t.match(chooseXdpMode('auto', { name: 'ens5', virtual: false, driver: 'ixgbe' }), { mode: 'auto', reason: 'driver ixgbe: native XDP' });
  t.same(chooseXdpMode('native', { name: 'eth0', virtual: true }), { mode: 'native', reason: '--xdp-mode native' }, 'an explicit mode wins, even on a veth');
  t.same(chooseXdpMode('generic', { name: 'ens5', virtual: false }), { mode: 'generic', reason: '--xdp-mode generic' });
  t.same(chooseXdpMode('tc', { name: 'ens5', virtual: false, driver: 'ixgbe' }), { mode: 'tc', reason: '--xdp-mode tc' }, 'tc everywhere when asked');
});

t.test('interfaceFacts reads sysfs: a device link and its driver, or none', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'phx-sysfs-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'class', 'net', 'veth0'), { recursive: true });
  mkdirSync(join(root, 'devices', 'pci0000:00', '0000:00:05.0'), { recursive: true });
  mkdirSync(join(root, 'bus', 'pci', 'drivers', 'ixgbe'), { recursive: true });
  symlinkSync(join(root, 'bus', 'pci', 'drivers', 'ixgbe'), join(root, 'devices', 'pci0000:00', '0000:00:05.0', 'driver'));
  mkdirSync(join(root, 'class', 'net', 'ens5'), { recursive: true });
  symlinkSync(join(root, 'devices', 'pci0000:00', '0000:00:05.0'), join(root, 'class', 'net', 'ens5', 'device'));
  const net = join(root, 'class', 'net');
  t.same(interfaceFacts('veth0', net), { name: 'veth0', virtual: true });
  t.same(interfaceFacts('ens5', net), { name: 'ens5', virtual: false, driver: 'ixgbe' });
  t.same(interfaceFacts('lo', '/sys/class/net'), { name: 'lo', virtual: true }, 'the real sysfs: loopback has no device');
});
