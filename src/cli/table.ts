/**
 * kubectl-style aligned tables: upper-case headers, columns separated by
 * three spaces, no trailing blanks. A cell may hold several lines (the
 * backends of one frontend in `service list`); following lines are indented
 * under their column.
 */
export function renderTable(headers: string[], rows: (string | string[])[][]): string {
  const cells = rows.map((r) => r.map((c) => (Array.isArray(c) ? c : [c])));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => Math.max(0, ...(r[i] ?? ['']).map((l) => l.length)))));
  const line = (parts: string[]) =>
    parts.map((p, i) => (i === parts.length - 1 ? p : p.padEnd(widths[i]!))).join('   ').trimEnd();
  const out = [line(headers)];
  for (const r of cells) {
    const height = Math.max(1, ...r.map((c) => c.length));
    for (let k = 0; k < height; k++) out.push(line(headers.map((_, i) => r[i]?.[k] ?? '')));
  }
  return out.join('\n');
}

/** k8s.io/apimachinery/pkg/util/duration.HumanDuration, which kubectl's AGE column uses. */
export function humanDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < -1) return '<invalid>';
  if (s < 0) return '0s';
  if (s < 60 * 2) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 60 * 3) return `${m}m`;
  const h = Math.floor(s / 3600);
  if (h < 8) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (h < 48) return `${h}h`;
  if (h < 24 * 8) return h % 24 === 0 ? `${Math.floor(h / 24)}d` : `${Math.floor(h / 24)}d${h % 24}h`;
  if (h < 24 * 365 * 2) return `${Math.floor(h / 24)}d`;
  const d = Math.floor(h / 24);
  if (h < 24 * 365 * 8) return d % 365 === 0 ? `${Math.floor(d / 365)}y` : `${Math.floor(d / 365)}y${d % 365}d`;
  return `${Math.floor(d / 365)}y`;
}

/** kubectl's AGE of an object created at `createdAt` (RFC 3339), or `<unknown>`. */
export function formatAge(createdAt: string | undefined, now: Date): string {
  const created = createdAt ? Date.parse(createdAt) : NaN;
  return Number.isNaN(created) ? '<unknown>' : humanDuration(now.getTime() - created);
}
