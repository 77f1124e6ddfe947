/**
 * Builds the dataplanes the forwarding benchmarks drive: a cni0 bridge with four pod ports
 * and an L3 uplink, sink drivers that count what is sent, pre-filled frame slots, and the
 * forwarding workload that feeds them as a TAP batch would.
 */
import { parseConfig } from '../src/config/load.ts';
import { VirtualClock } from '../src/core/clock.ts';
import type { FramePool } from '../src/core/frame-pool.ts';
import { Dataplane } from '../src/dataplane/dataplane.ts';
import { NeighState } from '../src/tables/neighbour-table.ts';
import type { PortTransmitter } from '../src/core/port-contract.ts';

export const BENCH_CONFIG = `
node: { name: bench }
bridges:
  - { name: cni0, address: 10.244.1.1/24, mac: 0a:58:0a:f4:01:01 }
ports:
  - { name: p0, bridge: cni0 }
  - { name: p1, bridge: cni0 }
  - { name: p2, bridge: cni0 }
  - { name: p3, bridge: cni0 }
  - { name: up, address: 192.168.50.11/24, mac: 02:00:00:00:50:11 }
routes:
  - { dst: 0.0.0.0/0, via: 192.168.50.1 }
`;

export class CountingSink implements PortTransmitter {
  frames = 0;
  transmit(_pool: FramePool, _slots: Int32Array, n: number): number {
    this.frames += n;
    return n;
  }
}

/**
 * MAC of pod h (1-based) on cni0. Random-looking, like the kernel gives a pod's eth0, with
 * the top bit of the low 32 bits set: half of all MACs are so, and the path must not box them.
 */
export function podMac(h: number): Buffer {
  return Buffer.from([0xd2, 0x5c, 0xca, 0xfe, 0x01, 1 + h]);
}

export function ipChecksum(b: Buffer, off: number): number {
  let s = 0;
  for (let i = 0; i < 20; i += 2) s += b.readUInt16BE(off + i);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** An Ethernet/IPv4/UDP frame of `size` bytes. */
export function udpFrame(dstMac: Buffer, srcMac: Buffer, srcIp: number, dstIp: number, size: number): Buffer {
  const f = Buffer.alloc(size);
  dstMac.copy(f, 0);
  srcMac.copy(f, 6);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(size - 14, 16);
  f[22] = 64;
  f[23] = 17;
  f.writeUInt32BE(srcIp, 26);
  f.writeUInt32BE(dstIp, 30);
  f.writeUInt16BE(ipChecksum(f, 14), 24);
  f.writeUInt16BE(40000, 34);
  f.writeUInt16BE(9, 36);
  f.writeUInt16BE(size - 34, 38);
  return f;
}

export interface BenchDataplane {
  dp: Dataplane;
  clock: VirtualClock;
  sinks: CountingSink[];
}

/** The bench node; `extraConfig` (YAML lines) is appended to BENCH_CONFIG (e.g. `nat:`). */
export function makeDataplane(extraConfig = ''): BenchDataplane {
  const clock = new VirtualClock();
  clock.set(1_700_000_000_000_000);
  const dp = new Dataplane(parseConfig(BENCH_CONFIG + extraConfig, 'bench'), { clock, poolSize: 4096 });
  const sinks = dp.ctx.ports.names.map(() => new CountingSink());
  sinks.forEach((s, p) => dp.setDriver(p, s));
  // Teach the bridge where the pods are and the router its gateway, as warm traffic would.
  const now = clock.nowUs();
  for (let h = 1; h <= 4; h++) {
    const m = podMac(h);
    dp.ctx.fdb.learn(0, m.readUInt16BE(0), m.readInt32BE(2), h - 1, now);
  }
  const gw = dp.ctx.neigh.create(dp.ctx.ifs.indexOf('up'), 0xc0a83201, now);
  dp.ctx.neigh.update(gw, 0x0200, 0x00005001, NeighState.PERMANENT, now);
  return { dp, clock, sinks };
}

/** Frames a forwarding workload hands over per run(), as one TAP read round of 256. */
export const BATCH = 256;

/** The bytes routing rewrites in an Ethernet/IPv4 frame at `at`: MACs, TTL, IPv4 checksum. */
export function routedBytes(at = 0): number[] {
  return [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 22, 24, 25].map((o) => o + at);
}

export const ROUTED_BYTES = routedBytes(0);

/**
 * A forwarding workload: fn(n) hands `n` frames to port `inPort` in batches of BATCH (slots
 * already filled, `receiveSlot`, one `run()` a batch), the frames of `flows` cycled through the
 * slots the pool hands out; before each frame the bytes at `restore` are written back as
 * received (that cost is included). Throws unless every frame left by port `expectPort`.
 */
export function forwarding(b: { dp: Dataplane; sinks: CountingSink[] }, flows: Buffer[], inPort: number, expectPort: number, restore: number[]): (n: number) => void {
  const at = Int32Array.from(restore);
  const pool = b.dp.pool;
  const data = pool.data;
  const template: Buffer[] = new Array(pool.capacity);
  const slots: number[] = [];
  for (let i = 0; i < BATCH; i++) {
    const s = pool.alloc();
    slots.push(s);
    template[s] = flows[i % flows.length];
  }
  for (const s of slots.reverse()) pool.free(s);
  for (let s = 0; s < pool.capacity; s++) if (template[s]) template[s].copy(data, pool.start[s]);
  const dp = b.dp;
  const out = b.sinks[expectPort];
  return (packets: number): void => {
    const before = out.frames;
    for (let done = 0; done < packets; done += BATCH) {
      const n = Math.min(BATCH, packets - done);
      for (let i = 0; i < n; i++) {
        const s = pool.alloc();
        const t = template[s];
        const o = pool.start[s];
        for (let k = 0; k < at.length; k++) data[o + at[k]] = t[at[k]];
        pool.len[s] = t.length;
        dp.receiveSlot(inPort, s);
      }
      dp.run();
    }
    if (out.frames - before !== packets) throw new Error(`only ${out.frames - before} of ${packets} frames reached port ${expectPort}`);
  };
}
