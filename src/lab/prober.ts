/**
 * A client that sends one HTTP request every INTERVAL ms (a new TCP
 * connection each, TIMEOUT ms to answer) and prints one line per answer:
 * "<ms since start> <first word of the body>" (the echo server's name), or
 * "<ms> fail <code> <ms taken>". Runs for at most DURATION ms, or until killed.
 *
 *   node dist/lab/prober.js URL INTERVAL_MS TIMEOUT_MS DURATION_MS
 */
import http from 'node:http';

const [url, interval, timeout, duration] = process.argv.slice(2) as [string, string, string, string];
const start = performance.now();
const agent = new http.Agent({ keepAlive: false });
const tick = setInterval(() => {
  const sent = performance.now();
  if (sent - start > Number(duration)) return stop();
  const req = http.get(url, { agent, timeout: Number(timeout) }, (res) => {
    let body = '';
    res.on('data', (d: Buffer) => { body += d.toString(); });
    res.on('end', () => process.stdout.write(`${Math.round(sent - start)} ${body.split(' ')[0]}\n`));
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', (e: NodeJS.ErrnoException) => process.stdout.write(`${Math.round(sent - start)} fail ${e.code ?? e.message} ${Math.round(performance.now() - sent)}\n`));
}, Number(interval));

function stop(): void {
  clearInterval(tick);
  setTimeout(() => process.exit(0), Number(timeout) + 50);
}
