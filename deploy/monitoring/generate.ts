/**
 * Writes the generated monitoring files from their sources:
 * - prometheusrule.yaml: pharos-rules.yaml wrapped as a Prometheus Operator
 *   PrometheusRule (same groups, same rules);
 * - pharos-dashboard.json: the Grafana dashboard of dashboard.ts.
 * `npm run monitoring:generate`; test/monitoring/rules.test.ts fails when a
 * committed file differs from what this writes.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { buildDashboard } from './dashboard.js';

export const MONITORING_DIR = dirname(fileURLToPath(import.meta.url));
export const RULES_FILE = join(MONITORING_DIR, 'pharos-rules.yaml');
export const PROMETHEUS_RULE_FILE = join(MONITORING_DIR, 'prometheusrule.yaml');
export const DASHBOARD_FILE = join(MONITORING_DIR, 'pharos-dashboard.json');

/** The PrometheusRule object holding the rule file's groups, as YAML. */
export function prometheusRuleYaml(ruleFileText: string): string {
  const { groups } = YAML.parse(ruleFileText) as { groups: unknown[] };
  const object = {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: { name: 'pharos', namespace: 'pharos-system', labels: { 'app.kubernetes.io/name': 'pharos' } },
    spec: { groups },
  };
  return `# Generated from pharos-rules.yaml by deploy/monitoring/generate.ts (npm run monitoring:generate): edit that file.\n${YAML.stringify(object, { lineWidth: 0 })}`;
}

export function dashboardJson(): string {
  return `${JSON.stringify(buildDashboard(), null, 2)}\n`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(PROMETHEUS_RULE_FILE, prometheusRuleYaml(readFileSync(RULES_FILE, 'utf8')));
  writeFileSync(DASHBOARD_FILE, dashboardJson());
  console.log(`wrote ${PROMETHEUS_RULE_FILE} and ${DASHBOARD_FILE}`);
}
