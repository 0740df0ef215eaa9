/**
 * L2 announcements across nodes, with real kernels asking: two LB nodes run
 * the agent in Kubernetes mode against the API emulator (over management
 * links), a client on the same segment resolves the VIPs by ARP and NDP to
 * the lease holder and gets TCP answers through it. Then the holder dies
 * (SIGKILL), stops cleanly, loses its link; policies change; the old holder
 * comes back and takes nothing back.
 */
import t from 'tap';
import { privilegedUnavailable } from '../support/privileged.js';
import { CLIENT, L2Lab, longestGap, sleep, waitFor } from '../../src/lab/l2-lab.js';


t.test('two LB nodes, leases, ARP/NDP to the holder, failover', { skip: privilegedUnavailable() }, async (t) => {
  // A prefix of its own (spread.test.ts and the failover bench had phe too): never torn down by another file's lab.
  const lab = await L2Lab.create(t, process.env.PHAROS_L2_LAB_PREFIX ?? 'phfo', 2);
  await lab.basePolicy();
  await lab.service('web', { dual: true });
  // Together: the two program verifications share the cores instead of queueing.
  await Promise.all([lab.startAgent('n1'), lab.startAgent('n2')]);

  const vips = await waitFor('addresses for default/web', 20_000, async () => {
    const v = await lab.vips('web');
    return v.length === 2 ? v : undefined;
  });
  const v4 = vips.find((a) => !a.includes(':'))!;
  const v6 = vips.find((a) => a.includes(':'))!;
  const first = await waitFor('a lease holder for web', 20_000, () => lab.holder('web'));
  const other = first === 'n1' ? 'n2' : 'n1';
  const mac = { n1: await lab.lab.mac('n1', 'eth0'), n2: await lab.lab.mac('n2', 'eth0') } as Record<string, string>;

  await t.test('the client resolves the VIPs by ARP and NDP to the holder and gets TCP answers', async (t) => {
    for (const vip of [v4, v6]) {
      const url = vip.includes(':') ? `http://[${vip}]/` : `http://${vip}/`;
      const body = await waitFor(`an answer from ${url}`, 15_000, async () => {
        const r = await lab.lab.exec('client', ['curl', '-sS', '-g', '--max-time', '1', url], { allowFail: true });
        return r.code === 0 ? r.stdout : undefined;
      });
      t.match(body, /^backend /, `${url} answered through the holder`);
      // One lease per address: the IPv6 address may have its own holder.
      const holder = (await lab.holderOf(vip))!;
      t.equal(await lab.neighbourMac('client', vip), mac[holder], `${vip} resolves to its holder ${holder}'s MAC`);
    }
    const st = await lab.state(other);
    const rows = st.l2.filter((r: { service: string }) => r.service === 'default/web');
    t.equal(rows.length, 2, 'the other node lists both addresses');
    const v4row = rows.find((r: { address: string }) => r.address === v4);
    t.ok(v4row && v4row.holder === first && !v4row.local, 'the IPv4 address with its holder, not local');
    for (const r of rows) t.equal(r.holder, await lab.holderOf(r.address), `${r.address}: the holder of its address lease`);
  });

  const measure = async (what: string, act: (holder: string) => Promise<void>): Promise<{ gap: number; from: string; to: string }> => {
    const from = (await lab.holder('web'))!;
    const to = from === 'n1' ? 'n2' : 'n1';
    const prober = lab.startProber(`http://${v4}/`);
    await sleep(1000);
    const at = performance.now() - prober.started;
    await act(from);
    await waitFor(`${to} to take web over after ${what}`, 20_000, async () => ((await lab.holder('web')) === to ? true : undefined), 50);
    await waitFor(`the client to resolve ${v4} to ${to}`, 20_000, async () => ((await lab.neighbourMac('client', v4)) === mac[to] ? true : undefined), 50);
    await sleep(1500);
    // The window ends well before the prober stops: requests cut by the stop are no gap.
    const end = performance.now() - prober.started - 500;
    const times = await prober.stop();
    return { gap: longestGap(times, at - 200, end), from, to };
  };

  await t.test('API outage: forwarding goes on, the holder keeps announcing (issue 18), nobody takes over after', async (t) => {
    const holder = (await lab.holder('web'))!;
    const prober = lab.startProber(`http://${v4}/`);
    await sleep(500);
    const at = performance.now() - prober.started;
    await lab.api.call('pause');
    await sleep(1500);
    const fenced = await lab.metrics(holder);
    await lab.api.call('resume');
    await sleep(3000);
    const end = performance.now() - prober.started - 500;
    const times = await prober.stop();
    t.match(fenced, /pharos_l2_announced [1-9]/, 'during the outage the holder kept announcing (nothing showed another node had its addresses)');
    t.match(fenced, /pharos_k8s_api_reachable 0/, 'and reported the API unreachable');
    const gap = longestGap(times, at, end);
    t.comment(`API paused 1.5 s: client-seen gap ${gap} ms`);
    t.ok(gap < 500, `traffic kept flowing through the outage (gap ${gap} ms)`);
    t.equal(await lab.holder('web'), holder, 'same holder after the API came back');
    await waitFor('the holder announcing again', 10_000, async () => (/pharos_l2_announced [1-9]/.test(await lab.metrics(holder)) ? true : undefined));
  });

  await t.test('SIGKILL of the holder\'s agent: the other node takes over', async (t) => {
    const r = await measure('SIGKILL', (h) => lab.kill(h, 'SIGKILL'));
    t.comment(`SIGKILL: ${r.from} -> ${r.to}, client-seen gap ${r.gap} ms`);
    t.ok(r.gap < 3000, `gap ${r.gap} ms`);
    await lab.startAgent(r.from);
    await sleep(3000);
    t.equal(await lab.holder('web'), r.to, 'the recovered node does not take the service back');
  });

  await t.test('clean stop (SIGTERM): fast handover', async (t) => {
    const r = await measure('SIGTERM', (h) => lab.kill(h, 'SIGTERM'));
    t.comment(`clean stop: ${r.from} -> ${r.to}, client-seen gap ${r.gap} ms`);
    t.ok(r.gap < 1000, `gap ${r.gap} ms`);
    await lab.startAgent(r.from);
  });

  await t.test('the holder\'s announcing link goes down: the other node takes over', async (t) => {
    let downed = '';
    const r = await measure('link down', async (h) => {
      downed = h;
      await lab.lab.exec(h, ['ip', 'link', 'set', 'eth0', 'down']);
    });
    t.comment(`link down: ${r.from} -> ${r.to}, client-seen gap ${r.gap} ms`);
    t.ok(r.gap < 3000, `gap ${r.gap} ms`);
    await lab.lab.exec(downed, ['ip', 'link', 'set', 'eth0', 'up']);
    await sleep(2000);
    t.equal(await lab.holder('web'), r.to, 'link back up: no fail-back');
  });

  await t.test('policy edits: relabel, nodeSelector, back', async (t) => {
    const holder = (await lab.holder('web'))!;
    const svc = await lab.api.get('services', 'default', 'web');
    svc.metadata.labels.announce = 'no';
    await lab.api.put('services', svc);
    await waitFor('web released after relabel', 10_000, async () => ((await lab.holder('web')) === undefined ? true : undefined));
    const st = await lab.state(holder);
    t.equal(st.l2.filter((r: { local: boolean }) => r.local).length, 0, 'relabelled: nobody announces');
    svc.metadata.labels.announce = 'yes';
    delete svc.metadata.resourceVersion;
    await lab.api.put('services', svc);
    const back = await waitFor('web announced again', 10_000, () => lab.holder('web'));
    t.ok(back, `announced again by ${back}`);
    const target = back === 'n1' ? 'n2' : 'n1';
    const policy = await lab.api.get('l2announcementpolicies', null, 'lab-l2');
    policy.spec.nodeSelector = { matchLabels: { 'kubernetes.io/hostname': target } };
    delete policy.metadata.resourceVersion;
    await lab.api.put('l2announcementpolicies', policy);
    await waitFor(`web moved to ${target}`, 10_000, async () => ((await lab.holder('web')) === target ? true : undefined));
    await waitFor(`client resolves to ${target}`, 10_000, async () => {
      await lab.lab.exec('client', ['ping', '-c1', '-W1', v4], { allowFail: true });
      return (await lab.neighbourMac('client', v4)) === mac[target] ? true : undefined;
    });
    t.pass(`nodeSelector moved web to ${target}`);

    // interfaces: ^eth0$ -> ^eth1$: announced on the second segment only.
    policy.spec.interfaces = ['^eth1$'];
    await lab.api.put('l2announcementpolicies', policy);
    await waitFor('web announced on eth1', 10_000, async () => {
      const rows = (await lab.state(target)).l2.filter((r: { service: string; local: boolean }) => r.service === 'default/web' && r.local);
      return rows.length > 0 && rows.every((r: { interfaces: string[] }) => r.interfaces.join() === 'eth1') ? true : undefined;
    });
    const eth1Mac = await lab.lab.mac(target, 'eth1');
    await lab.lab.exec('client', ['ip', 'route', 'replace', `${v4}/32`, 'dev', 'eth1']);
    await waitFor('the client resolves the VIP on eth1', 10_000, async () => {
      await lab.lab.exec('client', ['ping', '-c1', '-W1', v4], { allowFail: true });
      return (await lab.neighbourMac('client', v4, 'eth1')) === eth1Mac ? true : undefined;
    });
    t.pass(`${v4} resolves on eth1 to ${target}'s eth1`);
    await lab.lab.exec('client', ['ip', 'route', 'del', `${v4}/32`, 'dev', 'eth1']);
    await lab.lab.exec('client', ['ip', 'neigh', 'flush', 'dev', 'eth0']);
    await lab.lab.exec('client', ['ping', '-c1', '-W1', v4], { allowFail: true });
    t.equal(await lab.neighbourMac('client', v4, 'eth0'), undefined, 'no answer on eth0 any more');
  });
  t.comment(`client ${CLIENT.v4}`);
});
