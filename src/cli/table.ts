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
