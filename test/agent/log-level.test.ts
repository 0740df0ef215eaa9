/**
 * A SIGHUP reload that changes --log-level applies to every logger already
 * handed out (cli/agent.ts passes the level as a function of the running
 * config, which Agent.reload updates): before, reload reported logLevel as
 * applied while the old level stayed.
 */
import t from 'tap';
import { createLogger } from '../../src/agent/log.js';
import type { LogLevel } from '../../src/agent/config.js';

t.test('a level read from the running config follows a reload', async (t) => {
  const config: { logLevel: LogLevel } = { logLevel: 'info' };
  const lines: string[] = [];
  const log = createLogger({ level: () => config.logLevel, format: 'text', write: (l) => lines.push(l) });
  const child = log.with({ controller: 'l2' });
  child.debug('hidden');
  child.info('shown');
  config.logLevel = 'debug';
  child.debug('now shown');
  config.logLevel = 'error';
  log.warn('hidden again');
  t.same(lines.map((l) => /msg="([^"]*)"/.exec(l)?.[1]), ['shown', 'now shown']);
});

t.test('a fixed level stays fixed', async (t) => {
  const lines: string[] = [];
  const log = createLogger({ level: 'warn', format: 'json', write: (l) => lines.push(l) });
  log.info('no');
  log.warn('yes', { service: 'default/echo' });
  t.same(lines.map((l) => JSON.parse(l) as Record<string, unknown>).map((r) => [r.level, r.msg, r.service]), [['warn', 'yes', 'default/echo']]);
});
