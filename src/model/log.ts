/**
 * What a component logs through: one line per event, with the objects
 * concerned as fields (`service=default/echo`). Controllers depend on this
 * interface only; the agent's implementation (text or JSON, level changed by
 * SIGHUP) is src/agent/log.ts.
 */
export type LogFields = Record<string, string | number | boolean | undefined | null>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line (e.g. `{ controller: 'ipam' }`). */
  with(fields: LogFields): Logger;
}
