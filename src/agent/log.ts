/**
 * Structured logging: one line per event, text (`level=info msg="..." k=v`)
 * or JSON, with the objects concerned as fields (`service=default/echo`).
 */
import type { LogFields, Logger } from '../model/log.js';
import type { LogFormat, LogLevel } from './config.js';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

function quoteText(v: string): string {
  return /^[A-Za-z0-9_./:@,+-]+$/.test(v) ? v : JSON.stringify(v);
}

/**
 * `level` may be a function, read at every line, so a SIGHUP reload can
 * change the level of every logger already handed out.
 */
export function createLogger(opts: { level: LogLevel | (() => LogLevel); format: LogFormat; write?: (line: string) => void; base?: LogFields }): Logger {
  const write = opts.write ?? ((line: string) => process.stderr.write(line + '\n'));
  const configured = opts.level;
  const minimum = typeof configured === 'function' ? (): number => ORDER[configured()] : ((fixed) => (): number => fixed)(ORDER[configured]);
  const make = (base: LogFields): Logger => {
    const emit = (level: LogLevel, msg: string, fields?: LogFields): void => {
      if (ORDER[level] < minimum()) return;
      const all: LogFields = { ...base, ...fields };
      const time = new Date().toISOString();
      if (opts.format === 'json') {
        const rec: Record<string, unknown> = { time, level, msg };
        for (const [k, v] of Object.entries(all)) if (v !== undefined) rec[k] = v;
        write(JSON.stringify(rec));
      } else {
        const kv = Object.entries(all)
          .filter(([, v]) => v !== undefined)
          .map(([k, v]) => `${k}=${quoteText(String(v))}`);
        write([`time=${time}`, `level=${level}`, `msg=${JSON.stringify(msg)}`, ...kv].join(' '));
      }
    };
    return {
      debug: (m, f) => emit('debug', m, f),
      info: (m, f) => emit('info', m, f),
      warn: (m, f) => emit('warn', m, f),
      error: (m, f) => emit('error', m, f),
      with: (f) => make({ ...base, ...f }),
    };
  };
  return make(opts.base ?? {});
}
