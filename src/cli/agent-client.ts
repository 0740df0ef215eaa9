/**
 * How the CLI reaches a running agent: GET on its read-only HTTP endpoint
 * (`--agent URL`, default http://127.0.0.1:9643, or PHAROS_AGENT).
 */
import { stringify as toYaml } from 'yaml';
import { MAX_PAGE, STATE_API_VERSION, type AgentStateView, type StateSection } from '../metrics/state-view.js';

export const DEFAULT_AGENT_URL = 'http://127.0.0.1:9643';

/** Exit codes scripts can rely on. */
export const EXIT = { ok: 0, failure: 1, usage: 2, unreachable: 3 } as const;

export class CliError extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message);
  }
}

export interface CommonOptions {
  agent: string;
  output: 'table' | 'json' | 'yaml' | 'wide';
  rest: string[];
}

/** Pulls `--agent URL` and `-o/--output FORMAT` out of argv; the rest is returned in order. */
export function parseCommon(argv: string[], env = process.env): CommonOptions {
  const opts: CommonOptions = { agent: env.PHAROS_AGENT || DEFAULT_AGENT_URL, output: 'table', rest: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const take = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new CliError(`${a} needs a value`, EXIT.usage);
      return v;
    };
    if (a === '--agent') opts.agent = take();
    else if (a.startsWith('--agent=')) opts.agent = a.slice(8);
    else if (a === '-o' || a === '--output') opts.output = checkOutput(take());
    else if (a.startsWith('-o=') || a.startsWith('--output=')) opts.output = checkOutput(a.slice(a.indexOf('=') + 1));
    else if (/^-o(json|yaml|wide)$/.test(a)) opts.output = checkOutput(a.slice(2));
    else opts.rest.push(a);
  }
  return opts;
}

function checkOutput(v: string): CommonOptions['output'] {
  if (v === 'json' || v === 'yaml' || v === 'table' || v === 'wide') return v;
  throw new CliError(`-o ${v}: unknown output format (json, yaml, wide)`, EXIT.usage);
}

export async function fetchJson<T>(agent: string, path: string): Promise<T> {
  let res: Response;
  try {
    res = await fetch(new URL(path, agent), { signal: AbortSignal.timeout(5000) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
    throw new CliError(`cannot reach the pharos agent at ${agent} (${cause}): is \`pharos agent\` running? (--agent URL to point elsewhere)`, EXIT.unreachable);
  }
  if (!res.ok) throw new CliError(`agent at ${agent} answered ${res.status} for ${path}`, EXIT.failure);
  return (await res.json()) as T;
}

/** The sections of /v1/state a command needs (each command asks only for what it prints: at 10,000 services the whole document is megabytes). */
export async function fetchState(agent: string, sections: readonly StateSection[] = []): Promise<AgentStateView> {
  const state = await fetchJson<AgentStateView>(agent, `/v1/state?sections=${sections.join(',')}`);
  if (state.apiVersion !== STATE_API_VERSION) {
    throw new CliError(`agent at ${agent} speaks ${String(state.apiVersion)}, this CLI ${STATE_API_VERSION}`, EXIT.failure);
  }
  return state;
}

/** Every entry of one list section, page by page (`continue` tokens), without one huge response. */
export async function fetchList<K extends 'services' | 'frontends' | 'l2'>(agent: string, section: K): Promise<AgentStateView[K]> {
  const out: AgentStateView[K][number][] = [];
  let token: string | undefined;
  for (let pages = 0; pages < 10_000; pages++) {
    const path = token ? `/v1/state?continue=${encodeURIComponent(token)}&limit=${MAX_PAGE}` : `/v1/state?sections=${section}&limit=${MAX_PAGE}`;
    const state = await fetchJson<AgentStateView>(agent, path);
    if (state.apiVersion !== STATE_API_VERSION) {
      throw new CliError(`agent at ${agent} speaks ${String(state.apiVersion)}, this CLI ${STATE_API_VERSION}`, EXIT.failure);
    }
    out.push(...(state[section] as AgentStateView[K][number][]));
    token = state.continue;
    if (!token) break;
  }
  return out as AgentStateView[K];
}

export function printStructured(value: unknown, output: CommonOptions['output']): boolean {
  if (output === 'json') console.log(JSON.stringify(value, null, 2));
  else if (output === 'yaml') process.stdout.write(toYaml(value));
  else return false;
  return true;
}

/**
 * A `pharos NOUN VERB` command that shows one thing the agent reports:
 * checks the verb, fetches, and prints it as JSON or YAML when asked (-o),
 * else as the table `render` makes.
 */
export function runView<T>(argv: string[], o: { usage: string; verb: string; fetch: (agent: string) => Promise<T>; render: (value: T) => string }): Promise<number> {
  return runCli(async () => {
    const opts = parseCommon(argv);
    if (opts.rest[0] !== o.verb) throw new CliError(`usage: ${o.usage} [-o json|yaml] [--agent URL]`, EXIT.usage);
    const value = await o.fetch(opts.agent);
    if (!printStructured(value, opts.output)) console.log(o.render(value));
    return 0;
  });
}

/** Wraps a command body: CliErrors become their message and exit code. */
export async function runCli(fn: () => Promise<number>): Promise<number> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof CliError) {
      console.error(`pharos: ${err.message}`);
      return err.exitCode;
    }
    throw err;
  }
}
