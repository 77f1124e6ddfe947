/**
 * The benchmark harness: times a loop and measures what it allocates on the JS heap.
 *
 * Input: a name and `fn(iterations)`, which must run `iterations` operations and keep their
 * results alive (xor them into a module-level sink, say) so V8 cannot drop the work.
 * Output: a Measurement (ops/s, ns/op, heap bytes allocated per op, spread of the rates).
 *
 * Timing. The call size is calibrated first (doubling `iterations` until one call takes
 * ~5 ms, so the clock is read rarely); then calls run for a warm-up (a quarter of the target
 * time, at least 250 ms) so V8 has optimised `fn` and its callees; then for the target time:
 * 1 s, or BENCH_SECONDS. Ops/s is the total over the timed calls; `rsd` is the relative
 * standard deviation (%) of the per-call rates, a hint of noise from other processes.
 *
 * Allocation. V8 keeps no allocation counter that JavaScript can read (Node 20's
 * getHeapStatistics has no total_allocated_bytes), and heapUsed alone goes down at every
 * scavenge. So a separate run (a fifth of the target time, at least 200 ms) is bracketed by
 * a v8.GCProfiler: it records the heap's used size before and after every collection,
 * synchronously, without --expose-gc. Bytes allocated during the run are
 *
 *     (usedHeapSize at the end - usedHeapSize at the start) + sum over collections of
 *     (usedHeapSize before it - usedHeapSize after it)
 *
 * i.e. the growth plus everything the collections freed; divided by the ops run. Promotion
 * from the young to the old generation moves bytes without changing the used size, so it
 * is not counted twice. Constant costs (the statistics objects the readings themselves
 * create, ~1 KiB) are spread over millions of ops and vanish. A full collection runs first,
 * so garbage from earlier work is not freed (and counted) inside the measured run. Only the JS heap is seen:
 * Buffer/ArrayBuffer backing stores live outside it (a `Buffer.alloc` shows up as its
 * ~100-byte JS wrapper, not its contents).
 *
 * Validation (`npx tsx bench/harness.ts` runs it): a loop storing `{ a: i, b: i }` in a sink
 * reports 40 bytes/op — the exact size of that object on x64 without pointer compression
 * (map, properties, elements, two fields: 5 x 8 bytes) — and a loop summing a typed array
 * reports 0.0 bytes/op.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

// A handle on V8's collector without --expose-gc, so each allocation run starts from a
// collected heap: garbage left by an earlier benchmark (a previous dataplane's tables) must
// not be counted against this one when a major collection happens to run inside it.
v8.setFlagsFromString('--expose-gc');
const collect = vm.runInNewContext('gc') as () => void;

/** One row of output: a JSON line on stdout and a line of the human table (SPEC §6). */
export interface BenchResult {
  bench: string;
  /** Packets per second, for benches whose operation is one packet. */
  pps?: number;
  opsPerSec?: number;
  nsPerOp?: number;
  /** JS heap bytes allocated per operation (see the header for the method). */
  bytesAllocPerOp?: number;
  /** Packets handed over per call, for batched paths. */
  batch?: number;
  /** Bytes per frame (or per buffer summed). */
  frameBytes?: number;
  /** Throughput in Gbit/s of `frameBytes` per operation. */
  gbps?: number;
  /** Why the bench did not run (e.g. it needs root). */
  skipped?: string;
  [k: string]: unknown;
}

export interface MeasureOptions {
  /** Target timed duration; default BENCH_SECONDS or 1. */
  seconds?: number;
  /** Measure heap allocation per op (default true). */
  alloc?: boolean;
}

export interface Measurement {
  name: string;
  ops: number;
  seconds: number;
  opsPerSec: number;
  nsPerOp: number;
  /** Relative standard deviation of the per-call rates, in percent. */
  rsd: number;
  bytesAllocPerOp?: number;
}

/** Set from BENCH_SECONDS; falls back to 1 s on a missing or unusable value. */
export function targetSeconds(): number {
  const v = Number(process.env.BENCH_SECONDS);
  return Number.isFinite(v) && v > 0 ? v : 1;
}

const CALL_MS = 5;

function calibrate(fn: (iterations: number) => void): number {
  let n = 1;
  for (;;) {
    const t0 = performance.now();
    fn(n);
    const dt = performance.now() - t0;
    if (dt >= CALL_MS || n >= 2 ** 30) return n;
    // Jump close to the target once the call is long enough to time.
    n = dt > 0.5 ? Math.max(n * 2, Math.ceil((n * CALL_MS) / dt)) : n * 2;
  }
}

function runFor(fn: (iterations: number) => void, n: number, ms: number, rates?: number[]): { ops: number; ms: number } {
  let ops = 0;
  const t0 = performance.now();
  let last = t0;
  do {
    fn(n);
    ops += n;
    const now = performance.now();
    if (rates) rates.push(n / (now - last));
    last = now;
  } while (last - t0 < ms);
  return { ops, ms: last - t0 };
}

/** JS heap bytes allocated per op by `fn(n)` calls over ~`ms` (see the header). */
export function allocPerOp(fn: (iterations: number) => void, n: number, ms: number): number {
  collect();
  const profiler = new v8.GCProfiler();
  profiler.start();
  const before = v8.getHeapStatistics().used_heap_size;
  const { ops } = runFor(fn, n, ms);
  const after = v8.getHeapStatistics().used_heap_size;
  const gcs = profiler.stop().statistics;
  let freed = 0;
  for (const g of gcs) freed += g.beforeGC.heapStatistics.usedHeapSize - g.afterGC.heapStatistics.usedHeapSize;
  return Math.max(0, after - before + freed) / ops;
}

/** Warms up, times `fn` for the target duration, then measures its allocation. */
export function measure(name: string, fn: (iterations: number) => void, opts: MeasureOptions = {}): Measurement {
  const seconds = opts.seconds ?? targetSeconds();
  const n = calibrate(fn);
  runFor(fn, n, Math.max(250, seconds * 250));
  const rates: number[] = [];
  const { ops, ms } = runFor(fn, n, seconds * 1000, rates);
  const mean = rates.reduce((s, r) => s + r, 0) / rates.length;
  const variance = rates.reduce((s, r) => s + (r - mean) ** 2, 0) / rates.length;
  const m: Measurement = {
    name,
    ops,
    seconds: ms / 1000,
    opsPerSec: ops / (ms / 1000),
    nsPerOp: (ms * 1e6) / ops,
    rsd: mean > 0 ? (100 * Math.sqrt(variance)) / mean : 0,
  };
  if (opts.alloc !== false) m.bytesAllocPerOp = allocPerOp(fn, n, Math.max(200, seconds * 200));
  return m;
}

const round = (v: number, digits: number): number => {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
};

/**
 * A BenchResult from a Measurement. `packet`: the op is one packet, so `pps` is set;
 * `bytes`: bytes handled per op, for `frameBytes` and `gbps`.
 */
export function toResult(m: Measurement, extra: { packet?: boolean; bytes?: number } & Record<string, unknown> = {}): BenchResult {
  const { packet, bytes, ...rest } = extra;
  const r: BenchResult = { bench: m.name };
  if (packet) r.pps = Math.round(m.opsPerSec);
  else r.opsPerSec = Math.round(m.opsPerSec);
  r.nsPerOp = round(m.nsPerOp, 2);
  if (m.bytesAllocPerOp !== undefined) r.bytesAllocPerOp = round(m.bytesAllocPerOp, 1);
  if (bytes !== undefined) {
    r.frameBytes = bytes;
    r.gbps = round((m.opsPerSec * bytes * 8) / 1e9, 2);
  }
  r.rsd = round(m.rsd, 1);
  return Object.assign(r, rest);
}

/** Selftest: the allocation measurement on a loop that allocates and one that does not. */
export function selftest(): BenchResult[] {
  let keep: { a: number; b: number } = { a: 0, b: 0 };
  const allocating = (n: number): void => {
    for (let i = 0; i < n; i++) keep = { a: i, b: i };
  };
  const data = new Uint32Array(1024).map((_, i) => i * 2654435761);
  let acc = 0;
  const quiet = (n: number): void => {
    let s = acc;
    for (let i = 0; i < n; i++) s = (s + data[i & 1023]) | 0;
    acc = s;
  };
  const rows = [
    toResult(measure('harness.alloc-object', allocating, { seconds: 0.5 })),
    toResult(measure('harness.no-alloc', quiet, { seconds: 0.5 })),
  ];
  if (keep.a === -1 || acc === 0.5) console.log('');
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of selftest()) console.log(JSON.stringify(r));
}
