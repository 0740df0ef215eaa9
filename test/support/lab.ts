/**
 * The test side of the lab library (src/lab/netns.ts, re-exported here so a
 * test imports one module): BPF objects of test/support/bpf, the small echo
 * servers of echo-server.mjs and the HTTP and UDP clients that talk to them.
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { assertLabAddress, labBpfObject, type Lab } from '../../src/lab/netns.js';

export * from '../../src/lab/netns.js';

const SUPPORT_DIR = fileURLToPath(new URL('.', import.meta.url));

/** Compiles test/support/bpf/<name>.bpf.c into build/test/<name>.o (see labBpfObject). */
export function supportBpfObject(name: string): Promise<string> {
  return labBpfObject(join(SUPPORT_DIR, 'bpf', `${name}.bpf.c`), name);
}

// Echo server and HTTP client

const ECHO_SERVER = join(SUPPORT_DIR, 'echo-server.mjs');
const READY_TIMEOUT_MS = 5_000;

/**
 * Starts test/support/echo-server.mjs in `ns`. HTTP mode answers every
 * request with the body `<name> <clientaddr>`; UDP mode answers each datagram
 * with `<name> <clientaddr> <payload>`. `host` defaults to `::` (IPv4 and
 * IPv6). Resolves once the server reports it is listening (bounded wait).
 */
export async function startEchoServer(lab: Lab, ns: string, opts: { name: string; port: number; udp?: boolean; host?: string }): Promise<ChildProcess> {
  if (opts.host && opts.host !== '::' && opts.host !== '0.0.0.0') assertLabAddress(opts.host);
  const args = [process.execPath, ECHO_SERVER, opts.udp ? 'udp' : 'http', opts.name, String(opts.port), opts.host ?? '::'];
  const child = lab.spawn(ns, args);
  await new Promise<void>((resolve, reject) => {
    let out = '';
    let errText = '';
    const timer = setTimeout(() => finish(new Error(`echo server ${opts.name} in ${lab.ns(ns)} not listening after ${READY_TIMEOUT_MS} ms: ${errText}`)), READY_TIMEOUT_MS);
    const onData = (d: Buffer): void => {
      out += d.toString();
      if (out.includes('listening')) finish();
    };
    const onErr = (d: Buffer): void => { errText += d.toString(); };
    const onExit = (code: number | null): void => finish(new Error(`echo server ${opts.name} exited (${code}): ${errText}`));
    function finish(err?: Error): void {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve();
    }
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onErr);
    child.on('exit', onExit);
  });
  // Keep draining so a chatty server never blocks on a full pipe.
  child.stdout?.resume();
  return child;
}

function urlHost(url: string): string {
  const m = /^[a-z]+:\/\/(\[[^\]]+\]|[^/:]+)/.exec(url);
  if (!m) throw new Error(`bad url ${url}`);
  return m[1]!.replace(/^\[|\]$/g, '');
}

/** GET `url` with curl inside `ns`; returns the body. Throws on failure (connection, timeout, HTTP error). */
export async function httpGet(lab: Lab, ns: string, url: string, opts: { timeoutMs?: number; localAddress?: string } = {}): Promise<string> {
  assertLabAddress(urlHost(url));
  if (opts.localAddress) assertLabAddress(opts.localAddress);
  const timeoutMs = opts.timeoutMs ?? 5_000;
  const cmd = ['curl', '-sS', '-g', '--fail', '--noproxy', '*', '--max-time', String(timeoutMs / 1000)];
  if (opts.localAddress) cmd.push('--interface', opts.localAddress);
  cmd.push(url);
  const res = await lab.exec(ns, cmd, { timeoutMs: timeoutMs + 2_000 });
  return res.stdout;
}

/** Sends one UDP datagram from `ns` and returns the first reply (or throws after timeoutMs). */
export async function udpQuery(lab: Lab, ns: string, host: string, port: number, payload: string, opts: { timeoutMs?: number; localAddress?: string } = {}): Promise<string> {
  assertLabAddress(host);
  if (opts.localAddress) assertLabAddress(opts.localAddress);
  const timeoutMs = opts.timeoutMs ?? 3_000;
  const args = [process.execPath, ECHO_SERVER, 'udp-client', host, String(port), payload, String(timeoutMs), opts.localAddress ?? ''];
  const res = await lab.exec(ns, args, { timeoutMs: timeoutMs + 3_000 });
  return res.stdout;
}
