/**
 * Learning benchmarks: what a flood of new source MACs costs a bridge whose forwarding table
 * is full (`fdb.maxEntries`, 4,096), against the same frames from one MAC. Linux stops
 * learning at the limit (fdb_max_learned); here a full table is swept only once one of its
 * entries can have aged, so each refused station costs O(1).
 *
 *   learning.one-mac.64B           64-byte frames p0 → a known MAC on p1, from one source
 *                                  MAC the table holds (each frame refreshes it)
 *   learning.new-macs.full-fdb.64B the same frames, each from a source MAC never seen, the
 *                                  table full of fresh entries (the clock stands still)
 *   learning.new-macs.ratio        new-macs / one-mac time per frame (target ≤ 1.2): from
 *                                  the two rows' wall clock, and the median of 7 alternating
 *                                  CPU-time measurements (the figure least moved by other load)
 *
 * Both rows write the same 4 source-MAC bytes into every frame (the one-MAC row writes the
 * same value each time), so they differ only in what learning does. An 8-port plain L2
 * bridge, BATCH frames per `run()`, one op = one frame.
 */
import { parseConfig } from '../src/config/load.ts';
import { VirtualClock } from '../src/core/clock.ts';
import { HEADROOM } from '../src/core/frame-pool.ts';
import { Dataplane } from '../src/dataplane/dataplane.ts';
import { cpuRatio, r2 } from './cpu-time.ts';
import { CountingSink, podMac } from './dataplane-setup.ts';
import { measure, toResult, type BenchResult } from './harness.ts';

const MEMBERS = 8;
const BATCH = 64;
const FDB_MAX = 4096;
/** The one-MAC row's source (d2:5c:0a:f4:01:01: the high 16 bits are podMac's), learned on p0; new MACs count up from it. */
const SOURCE_HI = 0xd25c;
const SOURCE = 0x0af40101;

const CONFIG = `
node: { name: bench }
bridges:
  - { name: br0 }
ports:
${Array.from({ length: MEMBERS }, (_, i) => `  - { name: p${i}, bridge: br0 }`).join('\n')}
fdb: { maxEntries: ${FDB_MAX} }
`;

interface Learning {
  dp: Dataplane;
  sinks: CountingSink[];
  /** Source MAC low 32 bits of the next frame (new MACs), or a constant. */
  next: number;
  step: number;
  received: number;
}

function setup(newMacs: boolean): Learning {
  const clock = new VirtualClock();
  clock.set(1_700_000_000_000_000);
  const dp = new Dataplane(parseConfig(CONFIG, 'bench'), { clock, poolSize: 4096 });
  const sinks = dp.ctx.ports.names.map(() => new CountingSink());
  sinks.forEach((s, p) => dp.setDriver(p, s));
  const now = clock.nowUs();
  const dst = podMac(2);
  // The destination lives on p1, the one-MAC row's source on p0; the rest of the table is
  // full of fresh stations on p2.
  dp.ctx.fdb.learn(0, dst.readUInt16BE(0), dst.readInt32BE(2), 1, now);
  dp.ctx.fdb.learn(0, SOURCE_HI, SOURCE, 0, now);
  for (let i = 2; i < FDB_MAX; i++) dp.ctx.fdb.learn(0, 0x0a58, 0x7f000000 + i, 2, now);
  if (dp.ctx.fdb.size !== FDB_MAX) throw new Error(`fdb holds ${dp.ctx.fdb.size}, expected ${FDB_MAX}`);
  const frame = Buffer.alloc(64);
  dst.copy(frame, 0);
  podMac(1).copy(frame, 6);
  frame.writeUInt16BE(0x0800, 12);
  frame[14] = 0x45;
  frame.writeUInt16BE(50, 16);
  frame[22] = 64;
  frame[23] = 17;
  const pool = dp.pool;
  for (let s = 0; s < pool.capacity; s++) frame.copy(pool.data, s * pool.slotSize + HEADROOM);
  return { dp, sinks, next: SOURCE, step: newMacs ? 1 : 0, received: 0 };
}

function round(l: Learning, packets: number): void {
  const dp = l.dp;
  const pool = dp.pool;
  const data = pool.data;
  for (let done = 0; done < packets; done += BATCH) {
    const n = Math.min(BATCH, packets - done);
    for (let i = 0; i < n; i++) {
      const s = pool.alloc();
      const o = pool.start[s];
      const mac = l.next;
      l.next = (l.next + l.step) | 0;
      data[o + 8] = mac >>> 24;
      data[o + 9] = mac >>> 16;
      data[o + 10] = mac >>> 8;
      data[o + 11] = mac;
      pool.len[s] = 64;
      dp.receiveSlot(0, s);
    }
    l.received += n;
    dp.run();
  }
}

function run(name: string, l: Learning): BenchResult {
  const m = measure(name, (n) => round(l, n));
  if (l.sinks[1].frames !== l.received) throw new Error(`${name}: ${l.sinks[1].frames} of ${l.received} frames reached p1`);
  const r = toResult(m, { packet: true, frameBytes: 64, batch: BATCH });
  const fdb = l.dp.ctx.fdb;
  r.fdbEntries = fdb.size;
  r.notLearned = fdb.full;
  r.sweeps = fdb.sweeps;
  return r;
}

export async function benchLearning(): Promise<BenchResult[]> {
  const one = setup(false);
  const flood = setup(true);
  // The first measurement of a process runs while V8 still compiles the graph: warm up first.
  round(one, 1_000_000);
  round(flood, 1_000_000);
  const a = run('learning.one-mac.64B', one);
  const b = run('learning.new-macs.full-fdb.64B', flood);
  // The median of 7 alternating CPU-time pairs (new MACs' CPU time over one MAC's): the
  // figure least moved by other load.
  const ratio = cpuRatio((n) => round(one, n), (n) => round(flood, n), 7, 256_000);
  return [a, b, { bench: 'learning.new-macs.ratio', wallClock: r2((a.pps as number) / (b.pps as number)), cpuTimeAlternating: r2(ratio) }];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await benchLearning()) process.stdout.write(`${JSON.stringify(r)}\n`);
}
