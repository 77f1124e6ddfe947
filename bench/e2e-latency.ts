/**
 * Where a ping's microseconds go inside nodeplane: 1,000 pings at 10 ms from pod pa to pod pb
 * (same bridge) through `nodeplane run` (default mode, offload on) with its latency probe on
 * (NODEPLANE_LATENCY_FILE, src/ports/latency-probe.ts), which times every wake-up of a TAP:
 * libuv's readiness callback in C → the port's JavaScript callback → the read → the graph
 * run → the write into the other TAP → the end of the run. Each ping makes two wake-ups
 * (the request at pa's TAP, the reply at pb's).
 *
 * Rows: e2e.latency.rtt (the pings as ping saw them: min, p50, p90, p99, max, avg, in ms),
 * e2e.latency.<from>-<to> for each segment and e2e.latency.total (poll → end of the write):
 * p50Us, p90Us, p99Us, maxUs and `histogram` (counts per bucket of `bucketsUs`, the last
 * one open), over `wakeups`. ping runs at most 30 s. Then the same again with the packet
 * thread under SCHED_FIFO (`run --realtime 50`): rows e2e.latency.realtime.*. Last, the same
 * pings through the minimal C relay of bench/mq-relay.c (e2e.latency.relay.rtt; skipped with
 * the reason without `cc`), for what this machine does to the tail with no nodeplane at all.
 *
 * Standalone: `node bin/run-ts.js bench/e2e-latency.ts` prints the JSON lines.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEMO_CONFIG, DEMO_PODS } from '../src/lab/demo-topology.ts';
import { Lab } from '../src/lab/lab.ts';
import type { Netns } from '../src/lab/netns.ts';
import type { LatencySummary, SegmentSummary } from '../src/ports/latency-probe.ts';
import { buildRelay, startRelay } from './e2e-multiqueue.bench.ts';
import type { BenchResult } from './harness.ts';
import { type SwitchAndPods, createSwitchAndPods } from './switch-and-pods.ts';

const PB = '10.244.1.3';
const PINGS = 1000;
/** `run --realtime` priority of the second run: chrt's and VPP's usual middle of the range. */
const REALTIME_PRIORITY = 50;

function segmentRow(bench: string, s: SegmentSummary, summary: LatencySummary): BenchResult {
  return { bench, p50Us: s.p50Us, p90Us: s.p90Us, p99Us: s.p99Us, maxUs: s.maxUs, wakeups: summary.wakeups, bucketsUs: summary.bucketsUs.join(','), histogram: s.histogram.join(',') };
}

/** The per-ping RTTs (ms) of a ping run without -q. */
export function pingTimes(out: string): number[] {
  const times: number[] = [];
  for (const m of out.matchAll(/time=([\d.]+) ms/g)) times.push(Number(m[1]));
  return times;
}

/**
 * Both modes: ordinary scheduling (e2e.latency.*), then `--realtime 50`
 * (e2e.latency.realtime.*), then the same pings through the minimal C relay
 * (e2e.latency.relay.rtt): what the machine itself does to a ping's tail.
 */
export async function benchLatency(): Promise<BenchResult[]> {
  return [
    ...(await latencyRun('e2e.latency', [])),
    ...(await latencyRun('e2e.latency.realtime', ['--realtime', String(REALTIME_PRIORITY)])),
    await relayRun(),
  ];
}

/** The pings through bench/mq-relay.c (single queue, one thread: one read()+write() per frame). */
async function relayRun(): Promise<BenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'nodeplane-bench-latency-relay-'));
  let net: SwitchAndPods | undefined;
  let relay: ChildProcess | undefined;
  try {
    const built = buildRelay(dir);
    if ('reason' in built) return { bench: 'e2e.latency.relay.rtt', skipped: built.reason };
    net = createSwitchAndPods('lt');
    relay = (await startRelay(built.bin, net, 'plain', 1)).relay;
    return { ...(await pings(net.pa)), bench: 'e2e.latency.relay.rtt' };
  } finally {
    relay?.kill('SIGKILL');
    net?.remove();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A warm-up, then PINGS pings at 10 ms from `pa` to PB: the rtt row's figures. */
async function pings(pa: Netns): Promise<BenchResult> {
  const warm = await pa.run('ping', ['-c', '3', '-i', '0.2', '-W', '2', '-q', PB], { timeoutMs: 15_000 });
  if (warm.code !== 0) throw new Error(`cannot ping ${PB}: ${warm.stdout}${warm.stderr}`);
  const r = await pa.run('ping', ['-c', String(PINGS), '-i', '0.01', '-w', '30', PB], { timeoutMs: 40_000 });
  const times = pingTimes(r.stdout).sort((a, b) => a - b);
  if (times.length === 0) throw new Error(`ping -> ${PB} failed: ${r.stdout.slice(-300)}${r.stderr}`);
  const q = (p: number): number => times[Math.min(times.length - 1, Math.floor(p * times.length))];
  const avg = times.reduce((s, t) => s + t, 0) / times.length;
  return { bench: '', pings: PINGS, replies: times.length, minMs: times[0], p50Ms: q(0.5), p90Ms: q(0.9), p99Ms: q(0.99), maxMs: times[times.length - 1], avgMs: Math.round(avg * 1000) / 1000 };
}

async function latencyRun(prefix: string, runArgs: string[]): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'nodeplane-bench-latency-'));
  const file = join(dir, 'latency.json');
  let lab: Lab | undefined;
  const before = process.env.NODEPLANE_LATENCY_FILE;
  try {
    // The lab's nodeplane inherits this process's environment.
    process.env.NODEPLANE_LATENCY_FILE = file;
    lab = await Lab.start({ config: DEMO_CONFIG, pods: DEMO_PODS, dir, runArgs });
    if (before === undefined) delete process.env.NODEPLANE_LATENCY_FILE;
    else process.env.NODEPLANE_LATENCY_FILE = before;
    const rtt = await pings(lab.pod('pa'));
    await lab.stopNodeplane('SIGTERM');
    const summary = JSON.parse(readFileSync(file, 'utf8')) as LatencySummary;
    const rows: BenchResult[] = [{ ...rtt, bench: `${prefix}.rtt` }];
    for (const s of summary.segments) rows.push(segmentRow(`${prefix}.${s.from}-${s.to}`, s, summary));
    rows.push(segmentRow(`${prefix}.total`, summary.total, summary));
    return rows;
  } finally {
    if (before === undefined) delete process.env.NODEPLANE_LATENCY_FILE;
    else process.env.NODEPLANE_LATENCY_FILE = before;
    await lab?.shutdown();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await benchLatency()) console.log(JSON.stringify(r));
}
