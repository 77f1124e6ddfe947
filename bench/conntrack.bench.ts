/**
 * Benchmark of the connection tracking table (src/tables/conntrack*.ts) and SNAT port
 * allocation (src/tables/nat-port-allocator.ts), at 1,000,000 entries.
 *
 *   conntrack.memory.1m             bytes per entry of a table of max 1,000,000, from the
 *                                   sizes of its typed arrays (bytesPerEntry), and the RSS
 *                                   the process grew by while filling it (rssBytesPerEntry)
 *   conntrack.lookup.1m             lookup() hits over 1,000,000 masqueraded UDP flows, both
 *                                   directions interleaved, in random order (one op = one
 *                                   packet's lookup)
 *   conntrack.lookup.1m.miss        lookup() of tuples that are not in that table
 *   conntrack.track.1m              track() of an established flow's packet, both directions
 *                                   in random order: lookup, UDP state step, refresh, counters
 *   conntrack.track.1k              the same over 1,000 flows, whose entries stay in cache:
 *                                   the compute cost alone, as a forwarding bench pays it
 *   conntrack.new-flow.1m           one new masqueraded UDP flow in a table at its steady
 *                                   state of ~1,000,000: track() of its first packet (lookup
 *                                   miss, create, UDP step) and NatPortAllocator.snat() to the
 *                                   node's address; the virtual clock advances 30 µs a flow,
 *                                   so each flow times out (30 s) ~1,000,000 flows later, and
 *                                   every 256 flows expire() reclaims what timed out, as
 *                                   between batches (its cost included; kept, remapped and
 *                                   failed count the allocator's outcomes)
 *   conntrack.expire.1m             expire() draining 1,000,000 entries that timed out over
 *                                   30 s, at each nextDeadline() as replay's timer loop does,
 *                                   4,096 per call (one op = one entry destroyed; wakeups)
 *   conntrack.expire.idle           one expire(now, 256) call with nothing due, on the full
 *                                   table: the cost every batch pays
 *
 * All ops take int32 arguments and allocate nothing: bytesAllocPerOp should read 0.
 *
 * On a shared machine the wall-clock rate mostly says how much CPU the process was given,
 * so the timed rows also carry `perCpuSecond`: ops per second of the process's own CPU time
 * (process.cpuUsage, user + system) over a separate run of about half a second of CPU. It
 * still moves with cache contention from other processes, but not with the run queue.
 * benchConntrack(filter?) returns the rows; `npx tsx bench/conntrack.bench.ts` prints them
 * as JSON lines.
 */
import { Random } from '../src/core/random.ts';
import { Conntrack } from '../src/tables/conntrack.ts';
import { NatPortAllocator } from '../src/tables/nat-port-allocator.ts';
import { perCpuSecond } from './cpu-time.ts';
import { type BenchResult, measure, toResult } from './harness.ts';

const UDP = 17;
const N = 1_000_000;
const T0 = 1_700_000_000_000_000;
const NODE = 0xc0a83201 | 0; // 192.168.50.1: the masquerade address
const SECOND = 1_000_000;

let sink = 0;

/** A harness row with the CPU-time rate added. */
function timed(name: string, fn: (n: number) => void, extra: Record<string, unknown> & { packet?: boolean }): BenchResult {
  const row = toResult(measure(name, fn), extra);
  row.perCpuSecond = perCpuSecond(fn, 10_000);
  return row;
}

/** Tuples of n flows from pods in 10.244.0.0/16 to servers on port 443, seeded. */
interface Flows {
  src: Int32Array;
  dst: Int32Array;
  sport: Int32Array;
  dport: Int32Array;
  /** The source port each flow leaves with after SNAT. */
  natPort: Int32Array;
}

function makeFlows(n: number, seed: number): Flows {
  const rng = new Random(seed);
  const f: Flows = { src: new Int32Array(n), dst: new Int32Array(n), sport: new Int32Array(n), dport: new Int32Array(n), natPort: new Int32Array(n) };
  for (let i = 0; i < n; i++) {
    f.src[i] = 0x0af40000 | rng.below(65536);
    f.dst[i] = (0x5db80000 | rng.below(65536)) | 0;
    f.sport[i] = 32768 + rng.below(28232);
    f.dport[i] = 443;
  }
  return f;
}

/** A table of max `max` filled with the flows, masqueraded to NODE and answered once (established). */
function filledTable(flows: Flows, max = N): { ct: Conntrack; filled: number; rssBytes: number } {
  const rss0 = process.memoryUsage().rss;
  const ct = new Conntrack({ max, hashSeed: 0x1234567 });
  const alloc = new NatPortAllocator(new Random(7));
  ct.nowUs = T0;
  let filled = 0;
  for (let i = 0; i < flows.src.length; i++) {
    const ref = ct.track(UDP, flows.src[i], flows.dst[i], flows.sport[i], flows.dport[i], 0, 64);
    flows.natPort[i] = -1;
    if (ref < 0 || (ref & 1) !== 0) continue; // a tuple drawn twice
    const port = alloc.snat(ct, ref >> 1, NODE);
    if (port < 0) continue;
    flows.natPort[i] = port;
    ct.track(UDP, flows.dst[i], NODE, flows.dport[i], port, 0, 64);
    filled++;
  }
  return { ct, filled, rssBytes: process.memoryUsage().rss - rss0 };
}

/** Flow indices × 2 + direction, shuffled, so lookups go both ways in random order. */
function refOrder(flows: Flows, seed: number): Int32Array {
  const order: number[] = [];
  for (let i = 0; i < flows.src.length; i++) if (flows.natPort[i] >= 0) order.push(i << 1, (i << 1) | 1);
  const rng = new Random(seed);
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.below(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return Int32Array.from(order);
}

function lookups(ct: Conntrack, flows: Flows, order: Int32Array): (n: number) => void {
  let pos = 0;
  const len = order.length;
  return (n) => {
    let acc = 0;
    for (let k = 0; k < n; k++) {
      const r = order[pos];
      pos = pos + 1 === len ? 0 : pos + 1;
      const i = r >> 1;
      acc ^= (r & 1) === 0 ? ct.lookup(UDP, flows.src[i], flows.dst[i], flows.sport[i], flows.dport[i]) : ct.lookup(UDP, flows.dst[i], NODE, flows.dport[i], flows.natPort[i]);
    }
    sink ^= acc;
  };
}

function misses(ct: Conntrack, flows: Flows): (n: number) => void {
  let pos = 0;
  const len = flows.src.length;
  return (n) => {
    let acc = 0;
    for (let k = 0; k < n; k++) {
      pos = pos + 1 === len ? 0 : pos + 1;
      // Port 444 is never used by the flows in the table.
      acc ^= ct.lookup(UDP, flows.src[pos], flows.dst[pos], flows.sport[pos], 444);
    }
    sink ^= acc;
  };
}

function tracks(ct: Conntrack, flows: Flows, order: Int32Array): (n: number) => void {
  let pos = 0;
  const len = order.length;
  return (n) => {
    let acc = 0;
    for (let k = 0; k < n; k++) {
      const r = order[pos];
      pos = pos + 1 === len ? 0 : pos + 1;
      const i = r >> 1;
      acc ^= (r & 1) === 0 ? ct.track(UDP, flows.src[i], flows.dst[i], flows.sport[i], flows.dport[i], 0, 64) : ct.track(UDP, flows.dst[i], NODE, flows.dport[i], flows.natPort[i], 0, 64);
    }
    sink ^= acc;
  };
}

/** New flows into a table at a steady state of ~N entries, old ones timing out (see the header). */
function newFlows(): { fn: (n: number) => void; ct: Conntrack; alloc: NatPortAllocator } {
  // Room for the entries that timed out and wait (up to a second) for reclamation.
  const ct = new Conntrack({ max: N + N / 10, hashSeed: 0x7654321 });
  const alloc = new NatPortAllocator(new Random(11));
  const stepUs = (30 * SECOND) / N;
  let i = 0;
  const fn = (n: number): void => {
    let acc = 0;
    for (let k = 0; k < n; k++, i++) {
      ct.nowUs = T0 + i * stepUs;
      // 65,536 pods, each opening its flows from successive source ports (from a per-pod
      // offset) to 4,096 servers: distinct tuples for 2^30 flows.
      const pod = i & 0xffff;
      const src = 0x0af40000 | pod;
      const sport = 32768 + (((i >>> 16) + Math.imul(pod, 0x9e3779b1)) & 0x3fff);
      const dst = 0x5db80000 | (Math.imul(i, 0x9e3779b1) >>> 20);
      const ref = ct.track(UDP, src, dst, sport, 443, 0, 64);
      if (ref >= 0) acc ^= alloc.snat(ct, ref >> 1, NODE);
      if ((i & 255) === 255) ct.expire(ct.nowUs, 512);
    }
    sink ^= acc;
  };
  return { fn, ct, alloc };
}

/** Fills a table with N UDP flows started over 30 s, then times draining it at the timer instants. */
function expireDrain(): BenchResult {
  const ct = new Conntrack({ max: N });
  for (let i = 0; i < N; i++) {
    ct.nowUs = T0 + Math.floor((i * 30 * SECOND) / N);
    ct.create(UDP, 0x0af40000 | (i & 0xffff), 0x5db80000, 1024 + (i >>> 16), 53);
  }
  let wakeups = 0;
  let calls = 0;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (;;) {
    const t = ct.nextDeadline();
    if (t === Infinity) break;
    wakeups++;
    // As the dataplane's timer run would: at most 4,096 per call, again while work is due.
    while (ct.expire(t, 4096) > 0) calls++;
    calls++;
  }
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(c0);
  const perCpu = Math.round((N / (cpu.user + cpu.system)) * 1e6);
  return { bench: 'conntrack.expire.1m', opsPerSec: Math.round((N / ms) * 1000), nsPerOp: Math.round(((ms * 1e6) / N) * 100) / 100, perCpuSecond: perCpu, entries: N, wakeups, calls, drainMs: Math.round(ms) };
}

export async function benchConntrack(filter: (name: string) => boolean = () => true): Promise<BenchResult[]> {
  const rows: BenchResult[] = [];
  const wantsTable = ['conntrack.memory.1m', 'conntrack.lookup.1m', 'conntrack.lookup.1m.miss', 'conntrack.track.1m', 'conntrack.expire.idle'].some((name) => filter(name));
  if (wantsTable) {
    const flows = makeFlows(N, 1);
    const { ct, filled, rssBytes } = filledTable(flows);
    if (filter('conntrack.memory.1m')) {
      rows.push({ bench: 'conntrack.memory.1m', max: ct.max, entries: ct.count, bytesPerEntry: Math.round(ct.bytesPerEntry * 10) / 10, tableMiB: Math.round(ct.byteLength / 2 ** 20), rssBytesPerEntry: Math.round(rssBytes / ct.count) });
    }
    const order = refOrder(flows, 2);
    if (filter('conntrack.lookup.1m')) rows.push(timed('conntrack.lookup.1m', lookups(ct, flows, order), { packet: true, entries: filled }));
    if (filter('conntrack.lookup.1m.miss')) rows.push(timed('conntrack.lookup.1m.miss', misses(ct, flows), { packet: true, entries: filled }));
    if (filter('conntrack.track.1m')) rows.push(timed('conntrack.track.1m', tracks(ct, flows, order), { packet: true, entries: filled }));
    if (filter('conntrack.expire.idle')) {
      const idle = (n: number): void => {
        let acc = 0;
        for (let k = 0; k < n; k++) acc += ct.expire(T0 + 10 * SECOND, 256);
        sink ^= acc;
      };
      rows.push(timed('conntrack.expire.idle', idle, { entries: ct.count }));
    }
  }
  if (filter('conntrack.track.1k')) {
    const flows = makeFlows(1000, 3);
    const { ct, filled } = filledTable(flows, 1000);
    rows.push(timed('conntrack.track.1k', tracks(ct, flows, refOrder(flows, 4)), { packet: true, entries: filled }));
  }
  if (filter('conntrack.new-flow.1m')) {
    const { fn, ct, alloc } = newFlows();
    fn(N + N / 4); // to the steady state: as many flows time out as start
    const row = timed('conntrack.new-flow.1m', fn, {});
    rows.push({ ...row, entries: ct.count, kept: alloc.kept, remapped: alloc.remapped, failed: alloc.failed, earlyDrop: ct.earlyDrop, drop: ct.drop });
  }
  if (filter('conntrack.expire.1m')) rows.push(expireDrain());
  if (sink === 0.5) console.log('');
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await benchConntrack()) console.log(JSON.stringify(r));
}
