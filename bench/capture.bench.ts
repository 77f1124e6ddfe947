/**
 * Benchmark of the file capture's cost per record (src/capture/port-capture.ts and the ring
 * its worker writes, capture-ring.ts), on each of the two threads:
 *
 *   capture.whole.1514B        1514-byte frames recorded whole
 *   capture.snaplen128.1514B   the same frames cut to 128 bytes (--snaplen 128)
 *
 * Frames are shown to a PortCapture as the dataplane shows them (onRx / onTx, then flush) in
 * batches of 32, received on one port and transmitted on another, into a file in a temporary
 * directory (on tmpfs, /dev/shm, when there is one: the disk's own speed is not the point;
 * BENCH_CAPTURE_DIR=DIR puts it elsewhere, e.g. on a disk, where the worker writes with
 * O_DIRECT). BENCH_RING_KIB sets the ring's size (default: DEFAULT_RING_BYTES).
 * The figures are CPU time per record, read from /proc for the packet thread and for every
 * other thread of the process (the worker writing the file; V8's helpers), not wall time: the
 * loop waits, off the clock, whenever the worker has more than 3/4 of the ring, so that no
 * record is dropped (`ringDrops`, reported, must be 0) and the cheaper path of a full ring is
 * never what is measured. The clock starts once the producer has gone round the ring once:
 * the first touch of the ring's pages (a page fault each) is paid once per capture, not per
 * record.
 *
 * benchCapture() returns the rows; `npx tsx bench/capture.bench.ts` prints them as JSON lines.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_RING_BYTES } from '../src/capture/capture-ring.ts';
import { PortCapture } from '../src/capture/port-capture.ts';
import { FramePool } from '../src/core/frame-pool.ts';
import type { BenchResult } from './harness.ts';

const BATCH = 32;
const RING = Number(process.env.BENCH_RING_KIB ?? DEFAULT_RING_BYTES / 1024) * 1024;
const FRAMES = 256;

/** CPU seconds of each thread of this process, by thread id (Linux /proc). */
function threadCpu(): Map<string, number> {
  const m = new Map<string, number>();
  for (const t of readdirSync('/proc/self/task')) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/self/task/${t}/stat`, 'utf8');
    } catch {
      continue; // the thread ended meanwhile
    }
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    m.set(t, (Number(f[11]) + Number(f[12])) / 100); // utime + stime, in clock ticks of 10 ms
  }
  return m;
}

async function run(name: string, snaplen: number, records: number): Promise<BenchResult> {
  const pool = new FramePool(1024);
  const slots: number[] = [];
  for (let i = 0; i < FRAMES; i++) slots.push(pool.fill(Buffer.alloc(1514, i), 0));
  const dir = mkdtempSync(join(process.env.BENCH_CAPTURE_DIR ?? (existsSync('/dev/shm') ? '/dev/shm' : tmpdir()), 'nodeplane-capture-bench-'));
  try {
    const cap = new PortCapture({ dir, portNames: ['pa', 'pb'], snaplen, clock: { nowUs: () => Date.now() * 1000 }, capacity: 1024, ringBytes: RING });
    const ring = (cap as unknown as { ring: { used(): number; bytes: number } }).ring;
    const main = String(process.pid);
    let k = 0;
    const batches = async (until: () => boolean): Promise<void> => {
      while (!until()) {
        for (let j = 0; j < BATCH; j++) cap.onRx(0, pool, slots[k++ % FRAMES]!);
        cap.flush(pool);
        for (let j = 0; j < BATCH; j++) cap.onTx(1, pool, slots[k++ % FRAMES]!);
        cap.flush(pool);
        while (ring.used() > (RING * 3) / 4) await new Promise((r) => setTimeout(r, 1));
      }
    };
    // Once round the ring off the clock: a capture's steady state, not the first touch of its pages.
    await batches(() => ring.bytes > RING);
    const warm = k;
    const before = threadCpu();
    await batches(() => k - warm >= records);
    k -= warm;
    const mid = threadCpu();
    cap.close();
    const after = threadCpu();
    const packetThread = mid.get(main)! - before.get(main)!;
    let others = 0;
    for (const [t, s] of after) if (t !== main) others += s - (before.get(t) ?? 0);
    return {
      bench: name,
      nsPerOp: Math.round((packetThread * 1e9) / k),
      otherThreadsNsPerRecord: Math.round((others * 1e9) / k),
      records: k,
      ringDrops: cap.ringDrops,
      frameBytes: 1514,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchCapture(): Promise<BenchResult[]> {
  const records = Math.round(400_000 * Number(process.env.BENCH_SECONDS ?? 1));
  return [await run('capture.whole.1514B', 262144, records), await run('capture.snaplen128.1514B', 128, records)];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await benchCapture()) process.stdout.write(`${JSON.stringify(r)}\n`);
}
