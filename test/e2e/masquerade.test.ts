/**
 * End to end: masquerade. A pod on cni0 and a host outside the cluster behind the node's L3
 * port (192.168.50.1 behind 192.168.50.11), with real Linux stacks in namespaces and
 * `nodeplane run` between them; TCP offload on (no capture), as a node runs.
 *
 * The lab first runs without `nat` (plain routing: the external host has a route to the
 * pods and sees their addresses), then restarts nodeplane in the same namespaces with
 * `nat: { clusterCIDR }`: the external host's HTTP server logs the node's address. Then
 * iperf3 through masquerade must keep at least 0.9× the routed throughput of the same run:
 * three rounds, each restarting nodeplane routed then masqueraded (same pod, same host,
 * seconds apart), 3-second runs; the median of the three rounds' ratios, so that a busy
 * moment on a shared machine, which falls on one round, cannot decide it on its own.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab } from '../../src/lab/lab.ts';
import { missingPrerequisite, skipUnlessReady } from './e2e-prerequisites.ts';

const problem = missingPrerequisite(['curl', 'python3', 'iperf3', 'ss']);
const skip = skipUnlessReady('end-to-end masquerade tests', problem);

const POD = '10.244.1.2';
const NODE_UP = '192.168.50.11';
const EXT = '192.168.50.1';

function config(nat: boolean): string {
  return `node:
  name: masq-node
bridges:
  - { name: cni0, address: 10.244.1.1/24, mac: "0a:58:0a:f4:01:01" }
ports:
  - { name: pa, type: tap, bridge: cni0 }
  - { name: up, type: tap, address: ${NODE_UP}/24, mac: "02:00:00:00:50:11" }
${nat ? 'nat:\n  clusterCIDR: 10.244.0.0/16\n' : ''}`;
}

interface IperfRun {
  gbps: number;
  /** The client's address as the server saw it. */
  peer: string;
}

/** Waits until something in `ns` listens on TCP `port`. */
async function listening(lab: Lab, host: string, port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = await lab.pod(host).run('ss', ['-Hltn', `sport = :${port}`]);
    if (r.stdout.trim() !== '') return;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`nothing listens on port ${port} in ${host} after 10 s`);
}

/** One bounded iperf3 run from the pod to the external host (a one-off server there). */
async function iperf(lab: Lab): Promise<IperfRun> {
  const server = lab.pod('up').spawn('iperf3', ['-s', '-1', '-B', EXT, '-J'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let serverOut = '';
  server.stdout!.setEncoding('utf8').on('data', (d: string) => (serverOut += d));
  const serverDone = new Promise<void>((resolve) => server.on('close', () => resolve()));
  const limit = setTimeout(() => server.kill('SIGKILL'), 40_000);
  try {
    await listening(lab, 'up', 5201);
    const r = await lab.pod('pa').run('iperf3', ['-c', EXT, '-t', '3', '-J'], { timeoutMs: 20_000 });
    if (r.code !== 0) throw new Error(`iperf3 -c ${EXT} from pa failed (${r.code ?? 'killed at 20 s'}): ${r.stdout.slice(0, 500)}${r.stderr}`);
    const result = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } };
    await serverDone;
    let peer: string;
    try {
      peer = (JSON.parse(serverOut) as { start: { connected: Array<{ remote_host: string }> } }).start.connected[0].remote_host;
    } catch (err) {
      throw new Error(`the iperf3 server's report is unreadable (${(err as Error).message}): ${serverOut.slice(0, 500)}`);
    }
    return { gbps: result.end.sum_received.bits_per_second / 1e9, peer };
  } finally {
    clearTimeout(limit);
    server.kill('SIGKILL');
  }
}

/** Serves `www` on EXT:port from the external host; curl from the pod; returns the body and the server's log. */
async function fetchFromOutside(lab: Lab, www: string, port: number): Promise<{ body: string; log: string }> {
  const server = lab.pod('up').spawn('python3', ['-m', 'http.server', String(port), '--bind', EXT, '--directory', www], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  server.stderr!.setEncoding('utf8').on('data', (d: string) => (log += d));
  try {
    for (let i = 0; i < 50; i++) {
      const r = await lab.pod('pa').run('curl', ['-sS', '--max-time', '5', `http://${EXT}:${port}/index.html`], { timeoutMs: 10_000 });
      if (r.code === 0) {
        // The log line is written after the response.
        for (let j = 0; j < 50 && !log.includes('GET /index.html'); j++) await new Promise((res) => setTimeout(res, 20));
        return { body: r.stdout, log };
      }
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error(`curl from pa never fetched http://${EXT}:${port}/index.html; server log: ${log}`);
  } finally {
    server.kill('SIGKILL');
  }
}

describe.skipIf(skip)('masquerade: a pod and a host outside the cluster, behind the L3 port', () => {
  let lab: Lab | undefined;
  let dir = '';
  let www = '';
  const marker = `hello from outside ${process.pid}`;

  beforeAll(async () => {
    if (problem) throw new Error(`end-to-end prerequisites missing: ${problem}`);
    dir = mkdtempSync(join(tmpdir(), 'nodeplane-masq-'));
    www = join(dir, 'www');
    mkdirSync(www);
    writeFileSync(join(www, 'index.html'), `<p>${marker}</p>\n`);
    lab = await Lab.start({
      config: config(false),
      pods: [
        { port: 'pa', address: `${POD}/24`, gateway: '10.244.1.1' },
        // Routed, the external host needs a way back to the pods; masqueraded, it answers the node.
        { port: 'up', address: `${EXT}/24`, routes: [{ dst: '10.244.0.0/16', via: NODE_UP }] },
      ],
      dir,
    });
  });

  afterAll(() => {
    lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("without nat, the external host's HTTP server logs the pod's own address", async () => {
    expect(lab!.nodeplaneStderr).toMatch(/"offload":true|offload: true/);
    const { body, log } = await fetchFromOutside(lab!, www, 8080);
    expect(body).toContain(marker);
    expect(log).toMatch(new RegExp(`^${POD.replaceAll('.', '\\.')} - - .*"GET /index.html HTTP/1.1" 200`, 'm'));
  });

  it("with nat, the external host's HTTP server logs the node's address, not the pod's", async () => {
    await lab!.restart(config(true));
    expect(lab!.nodeplaneStderr).toMatch(/"offload":true|offload: true/);
    const { body, log } = await fetchFromOutside(lab!, www, 8081);
    expect(body).toContain(marker);
    expect(log).toMatch(new RegExp(`^${NODE_UP.replaceAll('.', '\\.')} - - .*"GET /index.html HTTP/1.1" 200`, 'm'));
    expect(log).not.toContain(POD);
  });

  it('iperf3 through masquerade, offload on, reaches at least 0.9× the routed figure (median of three interleaved rounds)', async () => {
    const routed: IperfRun[] = [];
    const masq: IperfRun[] = [];
    for (let round = 0; round < 3; round++) {
      await lab!.restart(config(false));
      routed.push(await iperf(lab!));
      await lab!.restart(config(true));
      masq.push(await iperf(lab!));
    }
    for (const r of routed) expect(r.peer).toBe(POD);
    for (const r of masq) expect(r.peer).toBe(NODE_UP);
    const ratios = masq.map((m, i) => m.gbps / routed[i].gbps).sort((a, b) => a - b);
    const show = (runs: IperfRun[]): string => runs.map((r) => r.gbps.toFixed(2)).join(', ');
    process.stdout.write(`iperf3 pa → ${EXT} routed, without nat: ${show(routed)} Gbit/s\n`);
    process.stdout.write(`iperf3 pa → ${EXT} masqueraded: ${show(masq)} Gbit/s\n`);
    process.stdout.write(`iperf3 masqueraded/routed per round: ${ratios.map((r) => r.toFixed(2)).join(', ')}; median ${ratios[1].toFixed(2)}\n`);
    for (const r of routed) expect(r.gbps).toBeGreaterThan(0.05);
    expect(ratios[1]).toBeGreaterThanOrEqual(0.9);
  }, 120_000);
});
