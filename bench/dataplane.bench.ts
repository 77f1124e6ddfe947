/**
 * In-process forwarding benchmarks: frames enter the graph as a TAP batch would hand them
 * over (slots already filled), run through every stage, and leave through counting sinks.
 *
 *   dataplane.l2-forward   known unicast between two pod ports of cni0
 *   dataplane.l3-forward   pod port → gateway MAC → route lookup → L3 uplink (neighbour known)
 *   dataplane.l3-forward.fib100k   the same with 100,000 routes and 256 destinations
 *   dataplane.routed-to-bridged.ratio   l3-forward / l2-forward rate of 64-byte frames (target
 *                  ≥ 0.6): from the two rows' wall clock, and the median of 7 alternating
 *                  CPU-time pairs of 512,000 frames each, the figure least moved by other load
 *
 * One op is one packet; batches of BATCH frames per `run()`. The frames stay in their slots
 * between rounds: before each round the bench rewrites only what forwarding changed (MACs,
 * TTL, checksum), as a receive path would have written fresh bytes; that cost is included.
 */
import { Fib, RouteKind } from '../src/tables/fib.ts';
import { measure, toResult, type BenchResult } from './harness.ts';
import { makeDataplane, podMac, udpFrame, type BenchDataplane } from './dataplane-setup.ts';

export const BATCH = 256;
const GATEWAY_MAC = Buffer.from([0x0a, 0x58, 0x0a, 0xf4, 0x01, 0x01]);
const POD1 = 0x0af40102;

interface Workload {
  bench: BenchDataplane;
  inPort: number;
  /** Per slot: the bytes of the frame as received (restored before each round). */
  template: Buffer[];
}

/** Fills the BATCH slots the pool will hand out with `frames` (cycled). */
function prepare(bench: BenchDataplane, frames: Buffer[], inPort: number): Workload {
  const pool = bench.dp.pool;
  const template: Buffer[] = new Array(pool.capacity);
  const slots: number[] = [];
  for (let i = 0; i < BATCH; i++) {
    const s = pool.alloc();
    slots.push(s);
    template[s] = frames[i % frames.length];
  }
  for (const s of slots.reverse()) pool.free(s);
  return { bench, inPort, template };
}

function round(w: Workload, packets: number): void {
  const dp = w.bench.dp;
  const pool = dp.pool;
  const data = pool.data;
  for (let done = 0; done < packets; done += BATCH) {
    const n = Math.min(BATCH, packets - done);
    for (let i = 0; i < n; i++) {
      const s = pool.alloc();
      const t = w.template[s];
      const o = pool.start[s];
      for (let b = 0; b < 12; b++) data[o + b] = t[b];
      data[o + 22] = t[22];
      data[o + 24] = t[24];
      data[o + 25] = t[25];
      pool.len[s] = t.length;
      dp.receiveSlot(w.inPort, s);
    }
    dp.run();
  }
}

function prefill(w: Workload): void {
  const pool = w.bench.dp.pool;
  for (let s = 0; s < pool.capacity; s++) {
    const t = w.template[s];
    if (t) t.copy(pool.data, pool.start[s]);
  }
}

function run(name: string, w: Workload, frameBytes: number, expectPort: number): BenchResult {
  prefill(w);
  const sink = w.bench.sinks[expectPort];
  const before = sink.frames;
  const m = measure(name, (n) => round(w, n));
  const sent = sink.frames - before;
  if (sent < m.ops) throw new Error(`${name}: only ${sent} of ${m.ops} frames reached port ${expectPort}`);
  return toResult(m, { packet: true, bytes: frameBytes, batch: BATCH });
}

function addRandomRoutes(fib: Fib, count: number, ifIndex: number, gateway: number): void {
  let x = 0x12345678;
  const target = fib.size + count;
  while (fib.size < target) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const len = 16 + (x % 9);
    const prefix = (((x * 2654435761) >>> 0) & ((0xffffffff << (32 - len)) >>> 0)) >>> 0;
    // Keep the pod, uplink and benchmark destination space out of it.
    if (prefix >>> 24 === 10 || prefix >>> 24 === 192) continue;
    fib.add(prefix, len, RouteKind.GATEWAY, ifIndex, gateway);
  }
}

/** CPU ns per frame of `packets` frames of `w` (process.cpuUsage: user + system). */
function cpuNs(w: Workload, packets: number): number {
  const c0 = process.cpuUsage();
  round(w, packets);
  const c = process.cpuUsage(c0);
  return ((c.user + c.system) * 1000) / packets;
}

/** The median of `pairs` alternating CPU-time ratios: ns per frame of `b` / ns per frame of `a`. */
function cpuRatio(a: Workload, b: Workload, pairs: number, packets: number): number {
  const ratios: number[] = [];
  for (let i = 0; i < pairs; i++) {
    const na = cpuNs(a, packets);
    ratios.push(na / cpuNs(b, packets));
  }
  ratios.sort((x, y) => x - y);
  return ratios[pairs >> 1];
}

const r2 = (v: number): number => Math.round(v * 100) / 100;

export async function benchDataplane(): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  for (const size of [64, 1500]) {
    const l2 = prepare(makeDataplane(), [udpFrame(podMac(2), podMac(1), POD1, 0x0af40103, size)], 0);
    const l3 = prepare(makeDataplane(), [udpFrame(GATEWAY_MAC, podMac(1), POD1, 0x08080808, size)], 0);
    const a = run(`dataplane.l2-forward.${size}B`, l2, size, 1);
    const b = run(`dataplane.l3-forward.${size}B`, l3, size, 4);
    results.push(a, b);
    if (size !== 64) continue;
    results.push({
      bench: 'dataplane.routed-to-bridged.ratio',
      wallClock: r2((b.pps as number) / (a.pps as number)),
      cpuTimeAlternating: r2(cpuRatio(l2, l3, 7, 512_000)),
    });
  }
  const big = makeDataplane();
  const up = big.dp.ctx.ifs.indexOf('up');
  addRandomRoutes(big.dp.ctx.fib, 100_000, up, 0xc0a83201);
  const dsts: Buffer[] = [];
  for (let i = 0; i < BATCH; i++) dsts.push(udpFrame(GATEWAY_MAC, podMac(1), POD1, (0x2c000000 + Math.imul(i, 0x010f0b07)) >>> 0, 64));
  const r = run('dataplane.l3-forward.64B.fib100k', prepare(big, dsts, 0), 64, 4);
  r.routes = big.dp.ctx.fib.size;
  results.push(r);
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await benchDataplane()) process.stdout.write(`${JSON.stringify(r)}\n`);
}
