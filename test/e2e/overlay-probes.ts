/**
 * Probes for the overlay end-to-end tests, each bounded in time: wait for a listener, ping,
 * serve a directory over HTTP and fetch a file through it (its sha256), and one iperf3 run
 * (for a time or a byte count).
 */
import type { ChildProcess } from 'node:child_process';
import type { Netns } from '../../src/lab/netns.ts';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits until something in `ns` listens on TCP `port` (10 s at most). */
export async function listening(ns: Netns, port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = await ns.run('ss', ['-Hltn', `sport = :${port}`]);
    if (r.stdout.trim() !== '') return;
    await sleep(100);
  }
  throw new Error(`nothing listens on port ${port} in ${ns.name} after 10 s`);
}

/** Pings until one answer comes (the first may wait for ARP), then 3 more; returns the received count of those. */
export async function ping(from: Netns, to: string): Promise<number> {
  await from.run('ping', ['-c', '1', '-W', '2', to], { timeoutMs: 5000 });
  const r = await from.run('ping', ['-c', '3', '-i', '0.2', '-W', '2', to], { timeoutMs: 10_000 });
  const m = /(\d+) received/.exec(r.stdout);
  return m ? Number(m[1]) : 0;
}

/** Serves `dir` over HTTP from `server` at ip:port until the returned process is killed. */
export async function serveHttp(server: Netns, ip: string, port: number, dir: string): Promise<ChildProcess> {
  const srv = server.spawn('python3', ['-m', 'http.server', String(port), '--bind', ip, '--directory', dir], { stdio: 'ignore' });
  await listening(server, port);
  return srv;
}

/** GETs `url` from `client`; the sha256 of the body. */
export async function fetchDigest(client: Netns, url: string): Promise<string> {
  const r = await client.run('bash', ['-o', 'pipefail', '-c', `curl -sS --fail --max-time 20 ${url} | sha256sum`], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`curl ${url} failed: ${r.stderr}`);
  return r.stdout.split(' ')[0];
}

/** Serves `dir` over HTTP from `server` at ip:port; fetches `file` from `client`; returns its sha256. */
export async function httpFetch(server: Netns, ip: string, port: number, dir: string, client: Netns, file: string): Promise<string> {
  const srv = await serveHttp(server, ip, port, dir);
  try {
    return await fetchDigest(client, `http://${ip}:${port}/${file}`);
  } finally {
    srv.kill('SIGKILL');
  }
}

/**
 * One bounded iperf3 run from `client` to `target` (an address the server at `ip` is reached
 * by: itself, a ClusterIP, a node's address:NodePort), for 3 s or `bytes`; Gbit/s received.
 */
export async function iperf(server: Netns, ip: string, client: Netns, o: { target?: string; port?: number; bytes?: string } = {}): Promise<number> {
  const srv = server.spawn('iperf3', ['-s', '-1', '-B', ip], { stdio: 'ignore' });
  const limit = setTimeout(() => srv.kill('SIGKILL'), 40_000);
  try {
    await listening(server, 5201);
    const target = o.target ?? ip;
    const what = o.bytes ? ['-n', o.bytes] : ['-t', '3'];
    const r = await client.run('iperf3', ['-c', target, '-p', String(o.port ?? 5201), ...what, '-J'], { timeoutMs: 20_000 });
    if (r.code !== 0) throw new Error(`iperf3 -c ${target} failed (${r.code ?? 'killed at 20 s'}): ${r.stdout.slice(0, 500)}${r.stderr}`);
    return (JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second / 1e9;
  } finally {
    clearTimeout(limit);
    srv.kill('SIGKILL');
  }
}
