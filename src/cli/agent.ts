/**
 * `pharos agent`: resolve the configuration, start the agent, and run until
 * SIGTERM/SIGINT (graceful: maps stay pinned, traffic keeps flowing) with
 * SIGHUP reloading the config file. Start-up errors print one clear line and
 * exit non-zero: 2 for bad flags/config, 1 for everything else.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { agentHelp, ConfigError, resolveConfig, type AgentConfig } from '../agent/config.js';
import { createLogger } from '../agent/log.js';
import type { Logger } from '../model/log.js';

/**
 * Test only, off unless PHAROS_TEST_STALL_MS is set: SIGUSR2 blocks the main
 * thread in a busy loop for that many ms, the way a start or restart at
 * 10,000 services stalls it (bench/scale), so a test can show what must
 * keep running through such a stall (BFD). SIGSTOP would stop every thread.
 */
function installTestStall(log: Logger): void {
  const ms = Number(process.env.PHAROS_TEST_STALL_MS);
  if (!Number.isFinite(ms) || ms <= 0) return;
  process.on('SIGUSR2', () => {
    log.warn('test stall: blocking the main thread', { ms });
    const end = performance.now() + ms;
    while (performance.now() < end) {
      // Busy on purpose: timers, sockets and promises of this thread wait.
    }
    log.warn('test stall over');
  });
}

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(agentHelp());
    return 0;
  }
  const resolve = (): AgentConfig => resolveConfig({ argv, env: process.env, readFile: (p) => readFileSync(p, 'utf8') });
  let cfg: AgentConfig;
  try {
    cfg = resolve();
    if (cfg.interfaces.length === 0) throw new ConfigError('--interfaces: at least one interface is required (where the data path attaches and announces)');
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`pharos agent: ${err.message}`);
      return 2;
    }
    throw err;
  }
  // The level is read from the running config, which a SIGHUP reload updates.
  const log = createLogger({ level: () => cfg.logLevel, format: cfg.logFormat, base: { node: cfg.nodeName } });
  const { Agent, AgentStartError } = await import('../agent/agent.js');
  const agent = new Agent(cfg, log);
  try {
    await agent.start();
  } catch (err) {
    log.error('agent failed to start', { error: (err as Error).message });
    console.error(`pharos agent: ${(err as Error).message}`);
    await agent.stop().catch(() => undefined);
    return err instanceof AgentStartError ? 1 : 1;
  }
  installTestStall(log);
  log.info('agent running', { http: cfg.http, source: cfg.manifests ? `manifests:${cfg.manifests}` : 'kubernetes' });
  return new Promise<number>((done) => {
    const shutdown = (signal: string): void => {
      log.info('shutting down', { signal });
      void agent.stop().then(() => done(0), (err: unknown) => {
        log.error('shutdown failed', { error: (err as Error).message });
        done(1);
      });
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
    process.on('SIGHUP', () => {
      try {
        agent.reload(resolve());
      } catch (err) {
        log.error('reload rejected; the running configuration stays', { error: (err as Error).message });
      }
    });
  });
}
