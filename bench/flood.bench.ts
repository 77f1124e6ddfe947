/**
 * Flood benchmarks: what bridge-forward costs when it floods — a broadcast, or a unicast to a
 * MAC the bridge has not learned, sent on to every other member of an 8-port bridge (a plain
 * L2 bridge, no router interface) — for 64-byte frames and for 64 KiB TCP super-frames as an
 * offloading TAP hands them over (virtio-net metadata set, 68 KiB slots).
 *
 *   flood.unknown-unicast.64B     flood.broadcast.64B
 *   flood.unknown-unicast.64KiB   flood.broadcast.64KiB
 *
 * One op is one frame received; each leaves as MEMBERS - 1 frames (`txPerFrame`). Batches of
 * BATCH frames per `run()`, the TAP's read batch. Every slot of the pool holds the frame's
 * bytes beforehand, so any slot the pool hands out is a valid frame, and the flood path
 * writes no frame bytes: no per-round rewrite. `bytesCopiedPerFrame`: frame bytes copied
 * from slot to slot per frame received, counted in a separate untimed pass by wrapping the
 * pool buffer's copy() and copyWithin() (the ways bytes move between slots).
 */
import { parseConfig } from '../src/config/load.ts';
import { VirtualClock } from '../src/core/clock.ts';
import { HEADROOM, OFFLOAD_SLOT_SIZE } from '../src/core/frame-pool.ts';
import { Dataplane } from '../src/dataplane/dataplane.ts';
import { CountingSink, ipChecksum, podMac } from './dataplane-setup.ts';
import { measure, toResult, type BenchResult } from './harness.ts';

const MEMBERS = 8;
const BATCH = 64;
/** The largest IPv4 datagram in an Ethernet frame: what a TSO super-frame can be. */
const SUPER_FRAME = 14 + 65535;
const BROADCAST = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
/** A pod MAC nobody has announced: every frame to it is flooded. */
const UNKNOWN = podMac(200);

const CONFIG = `
node: { name: bench }
bridges:
  - { name: br0 }
ports:
${Array.from({ length: MEMBERS }, (_, i) => `  - { name: p${i}, bridge: br0 }`).join('\n')}
`;

/** An Ethernet/IPv4/TCP frame of `size` bytes (ACK|PSH, 20-byte TCP header). */
function tcpFrame(dst: Buffer, size: number): Buffer {
  const f = Buffer.alloc(size);
  dst.copy(f, 0);
  podMac(1).copy(f, 6);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(size - 14, 16);
  f[20] = 0x40; // DF
  f[22] = 64;
  f[23] = 6;
  f.writeUInt32BE(0x0af40102, 26);
  f.writeUInt32BE(0x0af40103, 30);
  f.writeUInt16BE(ipChecksum(f, 14), 24);
  f.writeUInt16BE(40000, 34);
  f.writeUInt16BE(5201, 36);
  f[46] = 0x50;
  f[47] = 0x18;
  return f;
}

interface Flood {
  dp: Dataplane;
  sinks: CountingSink[];
  frame: Buffer;
  superFrame: boolean;
  /** Frames received so far (calibration and warm-up included). */
  received: number;
}

function setup(dst: Buffer, size: number): Flood {
  const clock = new VirtualClock();
  clock.set(1_700_000_000_000_000);
  const superFrame = size > 1514;
  const dp = new Dataplane(parseConfig(CONFIG, 'bench'), superFrame ? { clock, poolSize: 1024, slotSize: OFFLOAD_SLOT_SIZE } : { clock, poolSize: 4096 });
  const sinks = dp.ctx.ports.names.map(() => new CountingSink());
  sinks.forEach((s, p) => dp.setDriver(p, s));
  const frame = tcpFrame(dst, size);
  const pool = dp.pool;
  for (let s = 0; s < pool.capacity; s++) frame.copy(pool.data, s * pool.slotSize + HEADROOM);
  return { dp, sinks, frame, superFrame, received: 0 };
}

/** Receives `packets` frames on port 0, BATCH per run(), as TapPort.onBatch hands them over. */
function round(f: Flood, packets: number): void {
  const dp = f.dp;
  const pool = dp.pool;
  const len = f.frame.length;
  for (let done = 0; done < packets; done += BATCH) {
    const n = Math.min(BATCH, packets - done);
    for (let i = 0; i < n; i++) {
      const s = pool.alloc();
      pool.len[s] = len;
      if (f.superFrame) {
        pool.vnetFlags[s] = 1;
        pool.gsoType[s] = 1;
        pool.gsoHdrLen[s] = 54;
        pool.gsoSize[s] = 1448;
        pool.csumStart[s] = 34;
        pool.csumOffset[s] = 16;
      }
      dp.receiveSlot(0, s);
    }
    f.received += n;
    dp.run();
  }
}

/** Frame bytes copied between slots per frame received, over `frames` frames (untimed). */
function bytesCopiedPerFrame(f: Flood, frames: number): number {
  const data = f.dp.pool.data;
  let copied = 0;
  const { copy, copyWithin } = Buffer.prototype;
  Object.defineProperty(data, 'copy', {
    configurable: true,
    value(this: Buffer, target: Uint8Array, targetStart?: number, sourceStart = 0, sourceEnd = this.length): number {
      const n = copy.call(this, target, targetStart, sourceStart, sourceEnd);
      copied += n;
      return n;
    },
  });
  Object.defineProperty(data, 'copyWithin', {
    configurable: true,
    value(this: Buffer, targetStart: number, start: number, end = this.length): Buffer {
      copied += Math.max(0, Math.min(end, this.length) - start);
      return copyWithin.call(this, targetStart, start, end);
    },
  });
  try {
    round(f, frames);
  } finally {
    delete (data as { copy?: unknown }).copy;
    delete (data as { copyWithin?: unknown }).copyWithin;
  }
  return copied / frames;
}

function run(name: string, dst: Buffer, size: number): BenchResult {
  const f = setup(dst, size);
  const m = measure(name, (n) => round(f, n));
  const tx = f.sinks.reduce((n, s) => n + s.frames, 0);
  if (tx !== f.received * (MEMBERS - 1)) throw new Error(`${name}: ${tx} frames sent for ${f.received} received, expected ${MEMBERS - 1} each`);
  if (f.dp.pool.available !== f.dp.pool.capacity) throw new Error(`${name}: slots not returned to the pool`);
  // No gbps: with shared bytes a flood moves no payload in-process, so bytes × pps says nothing.
  const r = toResult(m, { packet: true, frameBytes: size, batch: BATCH });
  r.members = MEMBERS;
  r.txPerFrame = MEMBERS - 1;
  r.bytesCopiedPerFrame = Math.round(bytesCopiedPerFrame(f, BATCH * 16));
  return r;
}

export async function benchFlood(): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  for (const [label, size] of [
    ['64B', 64],
    ['64KiB', SUPER_FRAME],
  ] as const) {
    results.push(run(`flood.unknown-unicast.${label}`, UNKNOWN, size));
    results.push(run(`flood.broadcast.${label}`, BROADCAST, size));
  }
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await benchFlood()) process.stdout.write(`${JSON.stringify(r)}\n`);
}
