/**
 * What the monitoring tests read from deploy/monitoring/: the alerting rules
 * (names, expressions), the dashboard's queries, the PromQL selectors an
 * expression reads, and where Debian's Prometheus binaries are.
 */
import { existsSync, readFileSync } from 'node:fs';
import YAML from 'yaml';
import { DASHBOARD_FILE, RULES_FILE } from '../../deploy/monitoring/generate.js';

export interface AlertRule { alert: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }

export function alertRules(): AlertRule[] {
  const { groups } = YAML.parse(readFileSync(RULES_FILE, 'utf8')) as { groups: { name: string; rules: AlertRule[] }[] };
  return groups.flatMap((g) => g.rules);
}

export interface DashboardQuery { panel: string; refId: string; expr: string }

interface DashboardPanel { type: string; title: string; targets?: { refId: string; expr: string }[] }

export function dashboardQueries(): DashboardQuery[] {
  const d = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as { panels: DashboardPanel[] };
  return d.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, refId: t.refId, expr: t.expr })));
}

/**
 * The vector selectors of a PromQL expression that name a metric (`name` or
 * `name{matchers}`), e.g. for `rate(x_total{a="b"}[5m]) / y` → `x_total{a="b"}`, `y`.
 * Enough for the expressions here: names are pharos_* or `up`.
 */
export function selectorsOf(expr: string): string[] {
  const out = new Set<string>();
  for (const m of expr.matchAll(/\b(pharos_[a-z0-9_]+|up)\b(\{[^}]*\})?/g)) out.add(m[0]);
  return [...out];
}

/** The metric name a selector reads, as the agent's family name (histogram series named by their family). */
export function familyOf(selector: string): string {
  return selector.replace(/\{.*$/, '').replace(/_(bucket|sum|count)$/, '');
}

export const PROMETHEUS = '/usr/bin/prometheus';
export const PROMTOOL = '/usr/bin/promtool';

/** Why the Prometheus tests cannot run, or false. In CI (PHAROS_REQUIRE_PRIVILEGED=1) a missing binary fails instead. */
export function prometheusUnavailable(): string | false {
  const missing = [PROMETHEUS, PROMTOOL].filter((p) => !existsSync(p));
  if (missing.length === 0) return false;
  const why = `${missing.join(', ')} missing (Debian package prometheus; npm run setup installs it)`;
  if (process.env.PHAROS_REQUIRE_PRIVILEGED === '1') throw new Error(why);
  return why;
}
