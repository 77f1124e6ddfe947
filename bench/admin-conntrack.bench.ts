/**
 * Reading and flushing a conntrack table of 1,000,000 entries through the admin socket while
 * the dataplane forwards: the admin server shares the packet thread, so what matters is the
 * longest pause it puts between two batches (target: under 5 ms), and how long the whole
 * read takes.
 *
 * Setup: the bench node (dataplane-setup.ts) with `nat:` and `conntrack.max` 1,000,000,
 * filled with 1,000,000 UDP flows through the table's API, and its admin server on a unix
 * socket. The forwarding loop: on every turn of the event loop (setImmediate), 32 bridged
 * 64-byte UDP frames pod → pod go through `Dataplane.run()`; the time between the starts of
 * two turns is a gap, the pause a port's batch would have waited.
 *
 *   admin.conntrack.idle          the loop alone for 2 s: the noise floor of the machine
 *   admin.conntrack.show.1m.text  a client in another process reads the whole listing as
 *                                 `show conntrack` does (`/v1/conntrack?format=text`)
 *   admin.conntrack.show.1m.json  the same as JSON (`show conntrack --json`)
 *   admin.conntrack.flush.1m      `conntrack flush` of all 1,000,000 entries (DELETE)
 *
 * Each row: the largest gap, its 99th and 99.9th percentiles and the number over 5 ms,
 * twice: `cpu.*` counts the CPU time this process used between two turns (process.cpuUsage:
 * the event-loop thread's own work, GC included, plus what V8's helper threads did meanwhile,
 * so an upper bound of the pause the work caused); `wall.*` the wall-clock time, which on a
 * shared machine also holds the time the scheduler ran other processes (compare with the
 * idle row). Then batches run, seconds (the client's request to the end of the answer), entries and bytes
 * read, opsPerSec = entries per second. The client is a separate Node process (the
 * command's own), so its parsing does not run on the measured thread.
 *
 * Standalone: `npx tsx bench/admin-conntrack.bench.ts` prints the JSON lines.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAdminServer } from '../src/admin/server.ts';
import type { Dataplane } from '../src/dataplane/dataplane.ts';
import type { BenchResult } from './harness.ts';
import { makeDataplane, podMac, udpFrame } from './dataplane-setup.ts';

const N = 1_000_000;
const UDP = 17;
const FRAMES_PER_BATCH = 32;

/** Gaps in a histogram of 10 µs buckets up to 2 s (the longest is kept exactly): recording allocates nothing. */
class GapHistogram {
  private readonly counts = new Float64Array(200_000);
  max = 0;
  n = 0;

  add(ms: number): void {
    this.counts[Math.min(this.counts.length - 1, Math.floor(ms * 100))]++;
    if (ms > this.max) this.max = ms;
    this.n++;
  }

  /** The gap at quantile q (upper edge of its bucket). */
  at(q: number): number {
    const want = q * this.n;
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i];
      if (seen >= want) return (i + 1) / 100;
    }
    return this.max;
  }

  over(ms: number): number {
    let n = 0;
    for (let i = Math.ceil(ms * 100); i < this.counts.length; i++) n += this.counts[i];
    return n;
  }

  figures(prefix: string): Record<string, number> {
    const r2 = (v: number): number => Math.round(v * 100) / 100;
    return {
      [`${prefix}maxGapMs`]: r2(this.max),
      [`${prefix}p99GapMs`]: r2(this.at(0.99)),
      [`${prefix}p999GapMs`]: r2(this.at(0.999)),
      [`${prefix}gapsOver5ms`]: this.over(5),
    };
  }
}

/** CPU time of this process in ms (user + system; getrusage brings the running thread's share up to date). */
function cpuMs(): number {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
}

interface Forwarding {
  stop(): Record<string, number>;
}

/**
 * Runs a batch of frames on every turn of the event loop and records the time between the
 * starts of two turns, on the wall clock and in CPU time of this process.
 */
function forward(dp: Dataplane, frames: Buffer[]): Forwarding {
  const wall = new GapHistogram();
  const cpu = new GapHistogram();
  let on = true;
  let batches = 0;
  let last = performance.now();
  let lastCpu = cpuMs();
  const loop = (): void => {
    if (!on) return;
    const now = performance.now();
    const c = cpuMs();
    wall.add(now - last);
    cpu.add(c - lastCpu);
    last = now;
    lastCpu = c;
    for (const f of frames) dp.receive(0, f);
    dp.run();
    batches++;
    setImmediate(loop);
  };
  setImmediate(loop);
  return {
    stop: () => {
      on = false;
      return { batches, ...cpu.figures('cpu.'), ...wall.figures('wall.') };
    },
  };
}

/** The client: requests `path` (method) on the socket, discards the body, prints {ms, bytes, lines}. */
const CLIENT = `
const http = require('node:http');
const [sock, method, path] = process.argv.slice(1);
const t0 = performance.now();
let bytes = 0, lines = 0;
http.request({ socketPath: sock, path, method }, (res) => {
  res.on('data', (d) => { bytes += d.length; for (let i = d.indexOf(10); i >= 0; i = d.indexOf(10, i + 1)) lines++; });
  res.on('end', () => console.log(JSON.stringify({ status: res.statusCode, ms: performance.now() - t0, bytes, lines })));
}).end();
`;

function client(sock: string, method: string, path: string): Promise<{ status: number; ms: number; bytes: number; lines: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', CLIENT, sock, method, path], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`client exited with ${code}`))));
  });
}

function fill(dp: Dataplane): void {
  const ct = dp.ctx.conntrack!;
  const base = 0x0af40100 | 0; // 10.244.1.0
  // 16 pods, 65,536 source ports each, to one DNS server: 1,000,000 distinct flows.
  for (let i = 0; i < N; i++) ct.track(UDP, base + 2 + (i >>> 16), 0xcb007107 | 0, i & 0xffff, 53, 0, 60);
  if (ct.count !== N) throw new Error(`filled ${ct.count} entries, not ${N}`);
}

export async function benchAdminConntrack(filter: (name: string) => boolean = () => true): Promise<BenchResult[]> {
  const { dp } = makeDataplane(`nat: { clusterCIDR: 10.244.0.0/16 }\nconntrack: { max: ${N} }\n`);
  const frame = udpFrame(podMac(2), podMac(1), 0x0af40102, 0x0af40103, 64);
  const frames = Array.from({ length: FRAMES_PER_BATCH }, () => frame);
  const dir = mkdtempSync(join(tmpdir(), 'nodeplane-bench-'));
  const sock = join(dir, 'admin.sock');
  const server = await startAdminServer(dp, sock);
  const rows: BenchResult[] = [];
  try {
    if (filter('admin.conntrack.idle')) {
      const g = forward(dp, frames);
      await new Promise((r) => setTimeout(r, 2000));
      rows.push({ bench: 'admin.conntrack.idle', seconds: 2, ...g.stop() });
    }
    fill(dp);
    const runs: [string, string, string][] = [
      ['admin.conntrack.show.1m.text', 'GET', '/v1/conntrack?format=text'],
      ['admin.conntrack.show.1m.json', 'GET', '/v1/conntrack?format=json'],
      ['admin.conntrack.flush.1m', 'DELETE', '/v1/conntrack'],
    ];
    for (const [name, method, path] of runs) {
      if (!filter(name)) continue;
      const g = forward(dp, frames);
      const c = await client(sock, method, path);
      const gaps = g.stop();
      if (c.status !== 200) throw new Error(`${name}: status ${c.status}`);
      const entries = method === 'GET' ? c.lines : N;
      if (entries !== N) throw new Error(`${name}: ${entries} entries, not ${N}`);
      rows.push({
        bench: name,
        opsPerSec: Math.round(entries / (c.ms / 1000)),
        seconds: Math.round(c.ms) / 1000,
        entries,
        bytes: c.bytes,
        ...gaps,
      });
    }
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await benchAdminConntrack()) console.log(JSON.stringify(r));
}
