/**
 * What multi-queue TAPs (IFF_MULTI_QUEUE) give on this machine, measured with a relay of our
 * own rather than argued: bench/mq-relay.c, compiled here with `cc -O2`, joins two pods by
 * two TAPs, one read() and one write() per frame, poll() for readiness, plain frames (no
 * virtio-net header, MTU 1500), as the C relay of `../shared/bench/peers.sh` does. Three
 * modes of the same program:
 *   single        each TAP opened once, without IFF_MULTI_QUEUE, one thread (the baseline)
 *   mq2-1thread   each TAP with IFF_MULTI_QUEUE and two queues (two descriptors), one
 *                 thread polling all four: what a second queue read by nodeplane's one
 *                 packet thread would give
 *   mq2-2threads  the same two queues, a thread per queue pair (A queue i <-> B queue i)
 * The kernel picks a TAP's transmit queue by flow hash, so one TCP stream or one UDP flow
 * uses one queue; four streams may use both.
 *
 * Topology per mode and round: namespaces sw, pa (10.244.1.2/24) and pb (10.244.1.3/24); the
 * relay runs in sw and creates its TAPs there; once every queue is attached each TAP is moved
 * into a pod and renamed eth0 (the pod's interface). Tests, pa -> pb, BENCH_E2E_SECONDS each
 * (default 5): iperf3 TCP with one stream and with four (-P 4); iperf3 UDP with 64-byte
 * payloads and an unlimited sender (-u -l 64 -b 0); with the relay's CPU (all its threads,
 * % of one core) and the machine's. BENCH_MQ_ROUNDS rounds (default 3, at most 9), the
 * modes in a different order each round, so that load which comes and goes falls on all.
 *
 * Rows: e2e.mq.<mode>.tcp1 and .tcp4 (gbps of the median round, its relay CPU, every
 * round's gbps; for tcp4, every round's share of pa's frames that went through the busiest
 * queue, busiestQueuePct, 100 when all streams hashed to one queue), e2e.mq.<mode>.udp64 (kpps
 * received, the same), and e2e.mq.<mode>.ratio for each multi-queue mode: the median over
 * rounds of mode / single in the same round, for tcp1, tcp4 and udp64, with relay CPU per
 * Gbit/s (or per kpps) beside it. txQueues is what /sys/class/net/eth0/queues showed in pa,
 * to show each mode is the one intended. Without root, namespaces, TAP support, iperf3 or
 * ping, or without `cc`: one row `{ bench: 'e2e.mq', skipped: REASON }`.
 *
 * Safety: every host is a namespace created here (src/lab/netns.ts, `npt-<pid>-...`), so the
 * TAPs live in namespaces of this process only; the relay is sent SIGTERM at the end of each
 * mode, and its namespace's processes are killed when the namespace is removed (finally
 * block, and on exit); iperf3 and ping are bounded in time.
 *
 * Standalone: `node bin/run-ts.js bench/e2e-multiqueue.bench.ts`.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Netns } from '../src/lab/netns.ts';
import { iperfTcp, iperfUdp64, median, missing, seconds, skippedGroup, type Tcp, type Udp, warmUp } from './e2e.bench.ts';
import type { BenchResult } from './harness.ts';
import { type SwitchAndPods, createSwitchAndPods } from './switch-and-pods.ts';

const SOURCE = fileURLToPath(new URL('./mq-relay.c', import.meta.url));
const PA = '10.244.1.2';
const PB = '10.244.1.3';
const MTU = 1500;

const MODES = [
  { mode: 'single', queues: 'plain', threads: 1 },
  { mode: 'mq2-1thread', queues: '2', threads: 1 },
  { mode: 'mq2-2threads', queues: '2', threads: 2 },
] as const;
type Mode = (typeof MODES)[number]['mode'];

interface Round {
  tcp1: Tcp;
  tcp4: Tcp;
  udp64: Udp;
  /** Share of pa's frames in the 4-stream test that went through the busiest queue, %. */
  busiestQueuePct: number;
  txQueues: number;
}

const round = (v: number, digits: number): number => Math.round(v * 10 ** digits) / 10 ** digits;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function rounds(): number {
  const v = Number(process.env.BENCH_MQ_ROUNDS);
  return Number.isInteger(v) && v >= 1 && v <= 9 ? v : 3;
}

/** Compiles the relay into `dir`; returns the binary, or why it cannot be built. */
export function buildRelay(dir: string): { bin: string } | { reason: string } {
  if (spawnSync('sh', ['-c', 'command -v cc']).status !== 0) return { reason: '`cc` is not installed' };
  const bin = join(dir, 'mq-relay');
  const r = spawnSync('cc', ['-O2', '-Wall', '-pthread', '-o', bin, SOURCE], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) return { reason: `cc failed: ${(r.stderr ?? r.error?.message ?? '').trim()}` };
  return { bin };
}

/** The relay's stdout, line by line, with a wait for the next line that matches. */
export class RelayLines {
  private buf = '';
  private readonly lines: string[] = [];
  private stderr = '';

  constructor(readonly child: ChildProcess) {
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      this.buf += d;
      let nl;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        this.lines.push(this.buf.slice(0, nl));
        this.buf = this.buf.slice(nl + 1);
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
  }

  async next(re: RegExp, timeoutMs: number): Promise<string> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const i = this.lines.findIndex((l) => re.test(l));
      if (i >= 0) return this.lines.splice(0, i + 1)[i];
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`mq-relay exited: ${this.stderr.trim()}`);
      if (Date.now() > until) throw new Error(`mq-relay: no line matching ${re} in ${timeoutMs} ms: ${this.stderr.trim()}`);
      await sleep(20);
    }
  }

  /** Frames pa -> pb so far, per queue (the relay's A -> B counters). */
  async aToB(): Promise<number[]> {
    this.child.kill('SIGUSR1');
    const line = await this.next(/^frames /, 3000);
    const m = /A->B ([\d ]+) B->A/.exec(line);
    if (!m) throw new Error(`mq-relay: bad counters line "${line}"`);
    return m[1].trim().split(' ').map(Number);
  }
}

/** Moves TAP `tap` from `sw` into `pod` as eth0 with `address`. */
function plug(sw: Netns, tap: string, pod: Netns, address: string): void {
  sw.ip(['link', 'set', tap, 'netns', pod.name]);
  pod.ip(['link', 'set', tap, 'name', 'eth0']);
  pod.ip(['link', 'set', 'eth0', 'mtu', String(MTU)]);
  pod.ip(['addr', 'add', `${address}/24`, 'dev', 'eth0']);
  pod.ip(['link', 'set', 'eth0', 'up']);
}

/** Transmit queues of eth0 in `pod`, as sysfs shows them there. */
function txQueues(pod: Netns): number {
  const r = pod.runSync('sh', ['-c', 'ls /sys/class/net/eth0/queues']);
  return r.stdout.split(/\s+/).filter((q) => q.startsWith('tx-')).length;
}

/**
 * The relay between two TAPs it creates in `net.sw`, each then moved into a pod as its eth0
 * with the pod's address; `queues` 'plain' or a count, `threads` 1 or one per queue.
 */
export async function startRelay(bin: string, net: SwitchAndPods, queues: string, threads: number): Promise<{ relay: ChildProcess; lines: RelayLines }> {
  const relay = net.sw.spawn(bin, ['tapa', 'tapb', queues, String(threads)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = new RelayLines(relay);
  try {
    await lines.next(/^ready$/, 5000);
    plug(net.sw, 'tapa', net.pa, PA);
    plug(net.sw, 'tapb', net.pb, PB);
  } catch (err) {
    relay.kill('SIGKILL');
    throw err;
  }
  return { relay, lines };
}

/** One round of one mode: a fresh topology, the three tests, everything removed after. */
async function runMode(bin: string, m: (typeof MODES)[number], secs: number): Promise<Round> {
  let net: SwitchAndPods | undefined;
  let relay: ChildProcess | undefined;
  try {
    net = createSwitchAndPods('mq');
    const { pa, pb } = net;
    const started = await startRelay(bin, net, m.queues, m.threads);
    relay = started.relay;
    const lines = started.lines;
    const tx = txQueues(pa);
    await warmUp(pa, PB);
    const tcp1 = await iperfTcp(pa, pb, PB, secs, relay.pid, PB, 1);
    const before = await lines.aToB();
    const tcp4 = await iperfTcp(pa, pb, PB, secs, relay.pid, PB, 4);
    const after = await lines.aToB();
    const udp64 = await iperfUdp64(pa, pb, PB, secs, relay.pid);
    const perQueue = after.map((v, i) => v - before[i]);
    const total = perQueue.reduce((s, v) => s + v, 0);
    const busiestQueuePct = total > 0 ? Math.round((100 * Math.max(...perQueue)) / total) : 0;
    return { tcp1, tcp4, udp64, busiestQueuePct, txQueues: tx };
  } finally {
    if (relay && relay.exitCode === null && relay.signalCode === null) {
      relay.kill('SIGTERM');
      const t0 = Date.now();
      while (relay.exitCode === null && relay.signalCode === null && Date.now() - t0 < 2000) await sleep(20);
    }
    net?.remove();
  }
}

// ---------------------------------------------------------------------------------------
// Rows

/** The round whose `key` figure is the median, for its other figures. */
function medianOf(runs: Round[], key: (r: Round) => number): Round {
  const m = median(runs.map(key));
  return runs.find((r) => key(r) === m)!;
}

function testRow(mode: Mode, test: 'tcp1' | 'tcp4', runs: Round[]): BenchResult {
  const r = medianOf(runs, (x) => x[test].gbps);
  const t = r[test];
  const row: BenchResult = {
    bench: `e2e.mq.${mode}.${test}`,
    gbps: t.gbps,
    streams: test === 'tcp1' ? 1 : 4,
    retransmits: t.retransmits,
    relayCpuPct: t.cpu.dataplanePct,
    hostCpuPct: t.cpu.hostPct,
    idleBeforePct: t.idleBeforePct,
    load1: t.load1,
    mtu: MTU,
    txQueues: r.txQueues,
    rounds: runs.map((x) => x[test].gbps),
  };
  if (test === 'tcp4') row.busiestQueuePct = runs.map((x) => x.busiestQueuePct);
  return row;
}

function udpRow(mode: Mode, runs: Round[]): BenchResult {
  const r = medianOf(runs, (x) => x.udp64.kpps);
  return {
    bench: `e2e.mq.${mode}.udp64`,
    kpps: r.udp64.kpps,
    txKpps: r.udp64.txKpps,
    lossPct: r.udp64.lossPct,
    relayCpuPct: r.udp64.cpu.dataplanePct,
    hostCpuPct: r.udp64.cpu.hostPct,
    payloadBytes: 64,
    rounds: runs.map((x) => x.udp64.kpps),
  };
}

/** Median over rounds of mode / baseline in the same round (4 decimals). */
function ratioRow(mode: Mode, runs: Round[], base: Round[]): BenchResult {
  const q = (f: (r: Round) => number): number => round(median(runs.map((r, i) => f(r) / f(base[i]))), 4);
  // Relay CPU per unit of work: above 1, the mode costs more CPU for the same traffic.
  const cpuPer = (f: (r: Round) => number, cpu: (r: Round) => number | undefined): number | undefined => {
    const v = runs.map((r, i) => {
      const a = cpu(r);
      const b = cpu(base[i]);
      return a !== undefined && b !== undefined && b > 0 && f(r) > 0 ? a / f(r) / (b / f(base[i])) : NaN;
    });
    return v.some(Number.isNaN) ? undefined : round(median(v), 4);
  };
  const row: BenchResult = {
    bench: `e2e.mq.${mode}.ratio`,
    against: 'single',
    tcp1: q((r) => r.tcp1.gbps),
    tcp4: q((r) => r.tcp4.gbps),
    udp64: q((r) => r.udp64.kpps),
  };
  const c1 = cpuPer((r) => r.tcp1.gbps, (r) => r.tcp1.cpu.dataplanePct);
  const c4 = cpuPer((r) => r.tcp4.gbps, (r) => r.tcp4.cpu.dataplanePct);
  const cu = cpuPer((r) => r.udp64.kpps, (r) => r.udp64.cpu.dataplanePct);
  if (c1 !== undefined) row.cpuPerGbitTcp1 = c1;
  if (c4 !== undefined) row.cpuPerGbitTcp4 = c4;
  if (cu !== undefined) row.cpuPerKppsUdp64 = cu;
  return row;
}

export async function benchE2eMultiqueue(): Promise<BenchResult[]> {
  const reason = missing();
  if (reason) return skippedGroup('e2e.mq', reason);
  const dir = mkdtempSync(join(tmpdir(), 'nodeplane-bench-mq-'));
  try {
    const built = buildRelay(dir);
    if ('reason' in built) return skippedGroup('e2e.mq', built.reason);
    const secs = seconds();
    const n = rounds();
    const runs = new Map<Mode, Round[]>(MODES.map((m) => [m.mode, []]));
    for (let i = 0; i < n; i++) {
      // Each round starts at another mode, so no mode always runs first or last.
      for (let k = 0; k < MODES.length; k++) {
        const m = MODES[(i + k) % MODES.length];
        process.stderr.write(`e2e.mq: round ${i + 1}/${n}, ${m.mode}\n`);
        runs.get(m.mode)!.push(await runMode(built.bin, m, secs));
      }
    }
    const rows: BenchResult[] = [];
    for (const m of MODES) {
      const r = runs.get(m.mode)!;
      rows.push(testRow(m.mode, 'tcp1', r), testRow(m.mode, 'tcp4', r), udpRow(m.mode, r));
    }
    const base = runs.get('single')!;
    for (const m of MODES) if (m.mode !== 'single') rows.push(ratioRow(m.mode, runs.get(m.mode)!, base));
    return rows;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await benchE2eMultiqueue()) console.log(JSON.stringify(r));
}
