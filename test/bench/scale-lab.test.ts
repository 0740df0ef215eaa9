/**
 * The scale bench's lab at a small size, end to end against the real
 * agent: the services reach the kernel's maps (frontend with its backend
 * count, responder entry) and the wait sees it, the client's arping gets
 * answers from the XDP responder, an edit shows up as a changed frontend
 * value, and the agent's /metrics yields an event-loop figure.
 */
import t from 'tap';
import { privilegedUnavailable } from '../support/privileged.js';
import { sleep } from '../support/wait.js';
import { decodeFrontendValue } from '../../src/datapath/abi.js';
import { expectedOf, ScaleLab } from '../../bench/scale/lab.js';
import { baseManifests, ScaleCluster, scaleServices, serviceFiles } from '../../bench/scale/manifests.js';
import { phaseDelay, PROCESS_START } from '../../bench/scale/prometheus.js';

const SERVICES = 30;

t.test('scale lab: programmed from the kernel, ARP answered, an edit seen in ph_frontends', { skip: privilegedUnavailable(), timeout: 240_000 }, async (t) => {
  const lab = await ScaleLab.create({ prefix: 'phst' });
  t.teardown(() => lab.teardown());
  const services = scaleServices(0, SERVICES, 5);
  const cluster = new ScaleCluster(5);
  cluster.add(services);
  // One service whose file is missing at first: the wait must not count it as programmed.
  const [late, ...early] = [...services].reverse();
  lab.writeFiles([...baseManifests(), ...serviceFiles(early)]);
  const probe = lab.startArpProbe();
  const agent = await lab.startAgent();

  const first = await lab.waitProgrammed(expectedOf(early), 90_000);
  t.ok(first.doneAt !== undefined, `the ${early.length} written services programmed`);
  const partial = lab.watch.count(expectedOf(services));
  t.equal(partial?.programmed, SERVICES - 1, `${partial?.programmed} of ${SERVICES} programmed: the one without a manifest is not counted`);

  lab.writeFiles(serviceFiles(services.filter((s) => Math.floor(s.index / 10) === Math.floor(late!.index / 10))));
  const done = await lab.waitProgrammed(expectedOf(services), 60_000);
  t.ok(done.doneAt !== undefined, `all ${SERVICES} in the data path (${JSON.stringify({ ...done.last, vipByPort: undefined, programmedPorts: undefined })})`);
  t.ok(done.livenessMaxAgeMs !== undefined && done.livenessMaxAgeMs < 60_000, `liveness stamp read (${done.livenessMaxAgeMs} ms)`);
  const live = lab.livenessBetween(agent.startedAt, performance.now());
  t.ok(live.maxAgeMs !== null && live.staleMs >= 0, `liveness sampled in the background (largest age ${live.maxAgeMs} ms, stale ${live.staleMs} ms)`);

  await sleep(1000);
  const answered = probe.records.filter((r) => r.answered && r.at >= agent.startedAt).length;
  t.ok(answered > 0, `the probe VIP answered ${answered} ARP probes from the client`);

  const edit = cluster.nextEdit(services.map((s) => s.index));
  const vip = done.last!.vipByPort.get(edit.service.port)!;
  const before = lab.watch.frontendValue(vip, edit.service.port);
  t.ok(before, `frontend ${vip}:${edit.service.port} present`);
  lab.writeFiles([edit.file]);
  let after: Buffer | null = null;
  for (let i = 0; i < 300 && !(after && !after.equals(before!)); i++) {
    await sleep(100);
    after = lab.watch.frontendValue(vip, edit.service.port);
  }
  t.equal(after && decodeFrontendValue(after).backends, edit.service.endpoints.length, `the edit (${edit.delta > 0 ? '+1' : '-1'}) reached the frontend's backend count`);

  const m = await lab.http('/metrics', 30_000, { body: true });
  t.equal(m.status, 200, `/metrics answered in ${m.seconds} s`);
  const d = phaseDelay(PROCESS_START, [m.body!]);
  t.ok(d.source !== null && d.p99Ms !== null, `event-loop p99 ${d.p99Ms} ms from ${d.source}`);
  const s = lab.sampler.samples.filter((x) => x.pid === agent.pid);
  t.ok(s.length > 0 && s[s.length - 1]!.rssKb > 10_000, `agent RSS sampled (${s[s.length - 1]?.rssKb} kB)`);
});
