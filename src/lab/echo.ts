/**
 * The lab's backends and the clients that talk to them: startEchoServer
 * runs echo-server.ts inside a namespace, httpGet (curl) and udpQuery
 * (udp-client.ts) ask from another. Every address is checked against the
 * lab ranges first.
 */
import type { ChildProcess } from 'node:child_process';
import { assertLabAddress, labProgram, type Lab } from './netns.js';

const READY_TIMEOUT_MS = 5_000;

/**
 * Starts echo-server.ts in `ns`: HTTP on `port` (body `<name> <clientaddr>`),
 * or with `udp` UDP on it (reply `<name> <clientaddr> <payload>`); `udpPort`
 * adds a UDP echo beside the HTTP server. `host` defaults to `::` (IPv4 and
 * IPv6). Resolves once the server reports it is listening (bounded wait).
 */
export async function startEchoServer(lab: Lab, ns: string, opts: { name: string; port: number; udp?: boolean; udpPort?: number; host?: string }): Promise<ChildProcess> {
  if (opts.host && opts.host !== '::' && opts.host !== '0.0.0.0') assertLabAddress(opts.host);
  const ports = opts.udp ? ['--udp-port', String(opts.port)] : ['--port', String(opts.port), ...(opts.udpPort ? ['--udp-port', String(opts.udpPort)] : [])];
  const args = [process.execPath, labProgram('echo-server'), '--name', opts.name, ...ports, '--host', opts.host ?? '::'];
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
  const args = [process.execPath, labProgram('udp-client'), host, String(port), payload, String(timeoutMs), opts.localAddress ?? ''];
  const res = await lab.exec(ns, args, { timeoutMs: timeoutMs + 3_000 });
  return res.stdout;
}
