/**
 * `pharos lab up --l2-lease-duration/--l2-lease-renew-deadline/
 * --l2-lease-retry-period`: Cilium's l2announcements.* Helm values as the
 * agents' lease flags (pure, so its test loads nothing else).
 */

/**
 * A lease timing as Cilium's Helm values spell it (`3s`, `200ms`, `1m`; a
 * bare number is seconds), in seconds; undefined when it is none of those.
 */
export function parseLeaseDuration(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!m) return undefined;
  const n = Number(m[1]) * ({ ms: 0.001, s: 1, m: 60 }[m[2] ?? 's'] ?? 1);
  return n > 0 && n <= 3600 ? n : undefined;
}

/**
 * `--l2-lease-duration/-renew-deadline/-retry-period` (Cilium's
 * l2announcements.leaseDuration, leaseRenewDeadline, leaseRetryPeriod) as
 * the agent's flags; an error message for a bad value or a renew deadline
 * not shorter than the duration (the agent would refuse it).
 */
export function leaseAgentArgs(values: { duration?: string; renew?: string; retry?: string }): { args: string[] } | { error: string } {
  const args: string[] = [];
  const seconds: Record<string, number> = {};
  for (const [key, flag, agentFlag] of [['duration', 'l2-lease-duration', 'l2-lease-duration'], ['renew', 'l2-lease-renew-deadline', 'l2-lease-renew'], ['retry', 'l2-lease-retry-period', 'l2-lease-retry']] as const) {
    const raw = values[key];
    if (raw === undefined) continue;
    const s = parseLeaseDuration(raw);
    if (s === undefined) return { error: `--${flag} ${raw}: a duration such as 3s, 200ms or 1m (up to 1h)` };
    seconds[key] = s;
    args.push(`--${agentFlag}=${s}`);
  }
  // The agent's defaults (15 s, 5 s) where only one of the pair is given.
  if ((seconds.renew ?? 5) >= (seconds.duration ?? 15)) return { error: `--l2-lease-renew-deadline must be shorter than --l2-lease-duration (renew deadline ${seconds.renew ?? 5} s${seconds.renew === undefined ? ', the default' : ''}, duration ${seconds.duration ?? 15} s${seconds.duration === undefined ? ', the default' : ''})` };
  return { args };
}
