/**
 * The rules and the dashboard against a real Prometheus (Debian's 2.42)
 * scraping a real agent: the monitoring lab (lab.ts: bird2 with BFD, L2 and
 * BGP on one service, HTTP traffic through the data path, a full frontend
 * map and a service without an address) and Prometheus in the agent's
 * namespace, on 127.0.0.1 there (nothing listens on the host), with its own
 * configuration and storage in a temporary directory, scraping every
 * second and evaluating the rule file every second. It proves:
 * - Prometheus loads the rule file and evaluates every rule without error;
 * - every dashboard query parses and returns data in the lab, and every
 *   selector a rule reads has samples (the few that only exist in
 *   Kubernetes mode or during a fault are listed below with the reason);
 * - the alerts the lab provokes (a full map, a service without an address,
 *   a manifest too large) are pending or firing, and no other;
 * - the BGP-down expression follows bird stopping.
 * ~25 s on a quiet machine.
 */
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { privilegedUnavailable } from '../support/privileged.js';
import { waitFor } from '../support/wait.js';
import { RULES_FILE } from '../../deploy/monitoring/generate.js';
import { AGENT_HTTP, startMonitoringLab } from './lab.js';
import { PROMETHEUS, alertRules, dashboardQueries, familyOf, prometheusUnavailable, selectorsOf } from './monitoring-files.js';

/** Prometheus's port inside the agent's namespace (that namespace's loopback only). */
const PROM = '127.0.0.1:19090';
const SCRAPE_SECONDS = 1;

/**
 * Families with no sample in this lab, and why; a query or rule selector
 * reading only these may come back empty. Everything else must return data.
 */
const EMPTY_IN_LAB: Record<string, string> = {
  pharos_l2_fenced: 'only while an address is fenced (API outage with a foreign answer, or a healed partition: Kubernetes mode)',
  pharos_reconcile_errors_total: 'only after a controller failed',
  pharos_datapath_reattach_total: 'only after something removed pharos\'s programs from an interface',
  pharos_k8s_api_writes_total: 'Kubernetes mode only (manifests mode writes to no API)',
  pharos_l2_addresses_without_holder: 'Kubernetes mode only (manifests mode has no leases: each agent answers for what it carries); tested against the API emulator in test/monitoring/l2-holders.test.ts',
};

/**
 * Alerts the lab provokes on purpose (lab.ts: the frontend map full, a
 * service outside every pool, a manifest file too large): firing, or
 * pending when their `for:` runs longer than the test.
 */
const PROVOKED: Record<string, 'firing' | 'pending'> = {
  PharosBpfMapNearlyFull: 'pending',
  PharosBpfMapRefusing: 'firing',
  PharosServicesNotProgrammed: 'pending',
  PharosServiceWithoutAddress: 'pending',
  PharosManifestsRefused: 'firing',
  // The refused file is also a configuration problem (pharos status names it).
  PharosConfigProblems: 'pending',
};

interface PromResponse<T> { status: string; data: T; error?: string; errorType?: string }
interface VectorSample { metric: Record<string, string>; value: [number, string] }

t.test('a real Prometheus scrapes an agent in a lab: every panel and rule returns data, only provoked alerts', { skip: privilegedUnavailable() || prometheusUnavailable() }, async (t) => {
  const mon = await startMonitoringLab(t, 'phmon');
  const { lab, diag } = mon;
  const dir = mkdtempSync(join(tmpdir(), 'phmon-prom-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'prometheus.yml'), `global:
  scrape_interval: ${SCRAPE_SECONDS}s
  evaluation_interval: 1s
rule_files: [${JSON.stringify(RULES_FILE)}]
scrape_configs:
  - job_name: pharos
    static_configs: [{ targets: ["${AGENT_HTTP}"] }]
`);
  const prom = lab.spawn('lb', [PROMETHEUS, `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=${PROM}`, '--log.level=warn', '--storage.tsdb.retention.time=1h']);
  let promLog = '';
  prom.stderr?.on('data', (d: Buffer) => { promLog += d.toString(); });
  prom.stdout?.resume();
  t.teardown(() => { if (prom.exitCode === null) prom.kill('SIGKILL'); });
  const promDiag = (e: Error): never => diag(new Error(`${e.message}\nprometheus:\n${promLog.slice(-2000)}`));

  const api = async <T>(path: string, params: Record<string, string> = {}): Promise<PromResponse<T>> => {
    const args = ['curl', '-s', '--max-time', '10', '-G', `http://${PROM}/api/v1/${path}`];
    for (const [k, v] of Object.entries(params)) args.push('--data-urlencode', `${k}=${v}`);
    const r = await lab.exec('lb', args, { allowFail: true });
    if (r.code !== 0) throw new Error(`curl ${path}: exit ${r.code}`);
    return JSON.parse(r.stdout) as PromResponse<T>;
  };
  const query = (expr: string): Promise<PromResponse<{ resultType: string; result: VectorSample[] }>> => api('query', { query: expr });

  await waitFor('Prometheus to scrape the agent', 30_000, async () => {
    const r = await query('up{job="pharos"}');
    return r.data.result[0]?.value[1] === '1' ? true : undefined;
  }).catch(promDiag);

  // Traffic while Prometheus scrapes: rates over a window with two samples or more.
  const answered = await mon.traffic(30);
  t.equal(answered, 30, 'HTTP requests answered through the data path while scraped');
  // Wait for the counters of that traffic to be scraped: the packets rate of shop/web is above zero.
  await waitFor('a packets rate for shop/web', 20_000, async () => {
    const r = await query('sum(rate(pharos_datapath_packets_total{service="shop/web"}[10s]))');
    return Number(r.data.result[0]?.value[1] ?? 0) > 0 ? true : undefined;
  }).catch(promDiag);

  t.test('Prometheus loads every rule and evaluates it without error', async (t) => {
    const rules = await waitFor('every rule evaluated', 15_000, async () => {
      const r = await api<{ groups: { rules: { name: string; health: string; lastError?: string; lastEvaluation: string }[] }[] }>('rules');
      const all = r.data.groups.flatMap((g) => g.rules);
      return all.length > 0 && all.every((x) => !x.lastEvaluation.startsWith('0001')) ? all : undefined;
    }).catch(promDiag);
    t.same(rules.map((r) => r.name).sort(), alertRules().map((r) => r.alert).sort(), 'the rule file\'s alerts');
    for (const r of rules) t.equal(r.health, 'ok', `${r.name}${r.lastError ? `: ${r.lastError}` : ''}`);
  });

  t.test('every dashboard query parses and returns data', async (t) => {
    const queries = dashboardQueries();
    // Grafana's variables as a user's first view has them: every agent, a rate window of four scrapes.
    const resolve = (expr: string): string => expr.replaceAll('$instance', '.*').replaceAll('$__rate_interval', `${4 * SCRAPE_SECONDS}s`);
    for (const q of queries) {
      const r = await query(resolve(q.expr));
      t.equal(r.status, 'success', `${q.panel} ${q.refId} parses: ${r.error ?? ''}`);
      const families = selectorsOf(q.expr).map(familyOf);
      const excused = families.every((f) => f in EMPTY_IN_LAB);
      if (excused) {
        t.comment(`${q.panel} ${q.refId}: may be empty here (${families.map((f) => EMPTY_IN_LAB[f]).join('; ')})`);
        continue;
      }
      t.ok(r.data.result.length > 0, `${q.panel} ${q.refId} returns data: ${q.expr}`);
    }
  });

  t.test('every selector a rule reads has samples; only the provoked alerts are active', async (t) => {
    for (const rule of alertRules()) {
      const r = await query(rule.expr);
      t.equal(r.status, 'success', `${rule.alert} parses: ${r.error ?? ''}`);
      for (const sel of selectorsOf(rule.expr)) {
        if (familyOf(sel) in EMPTY_IN_LAB) continue;
        const s = await query(`group(${sel})`);
        t.ok(s.data.result.length > 0, `${rule.alert}: ${sel} has samples`);
      }
    }
    const active = await waitFor('the provoked alerts', 15_000, async () => {
      const r = await api<{ alerts: { labels: { alertname: string }; state: string }[] }>('alerts');
      const states = Object.fromEntries(r.data.alerts.map((a) => [a.labels.alertname, a.state]));
      return Object.keys(PROVOKED).every((p) => states[p] === PROVOKED[p]) ? states : undefined;
    }).catch(promDiag);
    t.same(active, PROVOKED, 'no other alert pending or firing in a healthy lab');
  });

  t.test('a rule follows a fault: BGP session down after bird stops', async (t) => {
    // The expression, not the alert (its for: 1m is longer than the test): the session's gauge reads 0.
    await mon.bird.stop();
    const down = await waitFor('pharos_bgp_session_up == 0', 30_000, async () => {
      const r = await query(alertRules().find((x) => x.alert === 'PharosBgpSessionDown')!.expr);
      return r.data.result.length > 0 ? r.data.result : undefined;
    }).catch(promDiag);
    t.equal(down[0]?.metric.peer, '64512/198.18.0.1:179');
  });
});
