/**
 * The alerting rules and the dashboard as files (no lab): `promtool check
 * rules` accepts the rule file and the generated PrometheusRule's rules,
 * `promtool test rules` passes and has a firing case for every alert, the
 * generated files are what deploy/monitoring/generate.ts writes now, the
 * dashboard imports as is (a `datasource` variable every query uses), and
 * every family the rules and panels read is one README "Metrics" lists.
 * test/monitoring/prometheus.test.ts evaluates them against live agents.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { DASHBOARD_FILE, MONITORING_DIR, PROMETHEUS_RULE_FILE, RULES_FILE, dashboardJson, prometheusRuleYaml } from '../../deploy/monitoring/generate.js';
import { PROJECT_ROOT } from '../../src/datapath/bpf-build.js';
import { PROMTOOL, alertRules, dashboardQueries, familyOf, prometheusUnavailable, selectorsOf } from './monitoring-files.js';

const skip = prometheusUnavailable();

function promtool(args: string[]): { code: number; out: string } {
  try {
    return { code: 0, out: execFileSync(PROMTOOL, args, { cwd: MONITORING_DIR, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 }) };
  } catch (e) {
    const err = e as { status: number; stdout: string; stderr: string };
    return { code: err.status ?? 1, out: `${err.stdout}${err.stderr}` };
  }
}

t.test('promtool check rules: the rule file and the PrometheusRule rules', { skip }, async (t) => {
  const r = promtool(['check', 'rules', RULES_FILE]);
  t.equal(r.code, 0, r.out);
  t.match(r.out, new RegExp(`SUCCESS: ${alertRules().length} rules found`));
  // The operator's object holds the same groups: check them as a plain rule file too.
  const dir = mkdtempSync(join(tmpdir(), 'phmon-rules-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const spec = (YAML.parse(readFileSync(PROMETHEUS_RULE_FILE, 'utf8')) as { spec: unknown }).spec;
  writeFileSync(join(dir, 'from-object.yaml'), YAML.stringify(spec));
  const fromObject = promtool(['check', 'rules', join(dir, 'from-object.yaml')]);
  t.equal(fromObject.code, 0, fromObject.out);
});

t.test('promtool test rules: every alert has a case where it fires', { skip }, async (t) => {
  const r = promtool(['test', 'rules', 'pharos-rules.test.yaml']);
  t.equal(r.code, 0, r.out);
  t.match(r.out, /SUCCESS/);
  const tests = YAML.parse(readFileSync(join(MONITORING_DIR, 'pharos-rules.test.yaml'), 'utf8')) as {
    tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[];
  };
  const firing = new Set(tests.tests.flatMap((c) => (c.alert_rule_test ?? []).filter((a) => (a.exp_alerts ?? []).length > 0).map((a) => a.alertname)));
  const names = alertRules().map((r) => r.alert);
  t.same(names.filter((n) => !firing.has(n)), [], 'alerts without a firing test');
  t.equal(new Set(names).size, names.length, 'alert names are unique');
});

t.test('generated files are up to date (npm run monitoring:generate)', async (t) => {
  t.equal(readFileSync(PROMETHEUS_RULE_FILE, 'utf8'), prometheusRuleYaml(readFileSync(RULES_FILE, 'utf8')), 'prometheusrule.yaml');
  t.equal(readFileSync(DASHBOARD_FILE, 'utf8'), dashboardJson(), 'pharos-dashboard.json');
  const object = YAML.parse(readFileSync(PROMETHEUS_RULE_FILE, 'utf8')) as { kind: string; spec: { groups: unknown } };
  t.equal(object.kind, 'PrometheusRule');
  t.same(object.spec.groups, (YAML.parse(readFileSync(RULES_FILE, 'utf8')) as { groups: unknown }).groups, 'the same groups as the rule file');
});

t.test('every rule says what to check, with a severity', async (t) => {
  for (const r of alertRules()) {
    t.match(r.labels?.severity ?? '', /^(critical|warning|info)$/, `${r.alert} severity`);
    t.match(r.annotations?.summary ?? '', /\S/, `${r.alert} summary`);
    t.match(r.annotations?.description ?? '', /`pharos [a-z]|`--|pharos_/, `${r.alert} names a command, flag or metric to check`);
  }
});

t.test('the dashboard imports as is: a datasource variable, every panel and query on it', async (t) => {
  const d = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as {
    templating: { list: { name: string; type: string; query: unknown }[] };
    panels: { type: string; title: string; datasource?: { uid: string }; targets?: { datasource: { uid: string }; expr: string }[] }[];
  };
  const ds = d.templating.list.find((v) => v.name === 'datasource');
  t.same(ds && { type: ds.type, query: ds.query }, { type: 'datasource', query: 'prometheus' });
  const panels = d.panels.filter((p) => p.type !== 'row');
  t.ok(panels.length >= 30, `${panels.length} panels`);
  for (const p of panels) {
    t.equal(p.datasource?.uid, '${datasource}', `${p.title}: panel datasource`);
    t.ok((p.targets ?? []).length > 0, `${p.title}: has queries`);
    for (const q of p.targets ?? []) t.equal(q.datasource.uid, '${datasource}', `${p.title}: query datasource`);
  }
  const titles = d.panels.filter((p) => p.type === 'row').map((p) => p.title);
  t.same(titles, ['Data path', 'Conntrack and BPF maps', 'IPAM', 'L2 announcements', 'BGP and BFD', 'Agent health']);
});

t.test('rules and panels read only families README "Metrics" lists', async (t) => {
  const readme = readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8');
  const metricsSection = readme.slice(readme.indexOf('## Metrics'), readme.indexOf('\n## ', readme.indexOf('## Metrics') + 5));
  const exprs = [...alertRules().map((r) => r.expr), ...dashboardQueries().map((q) => q.expr)];
  const families = new Set(exprs.flatMap(selectorsOf).map(familyOf).filter((f) => f !== 'up'));
  t.ok(families.size >= 40, `${families.size} families read`);
  for (const f of families) {
    // Named as `name`, `name{labels}`, or `..._suffix` after its sibling (`pharos_datapath_backend_packets_total`, `..._bytes_total`).
    const sibling = f.replace(/^pharos_[a-z]+_[a-z]+_/, '');
    const listed = new RegExp(`\`${f}[\`{]`).test(metricsSection) || metricsSection.includes(`\`..._${sibling}\``)
      || (/^pharos_(process|nodejs)_/.test(f) && metricsSection.includes('`pharos_process_*`'));
    t.ok(listed, `${f} in README "Metrics"`);
  }
});
