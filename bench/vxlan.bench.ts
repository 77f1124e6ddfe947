/**
 * VXLAN through the whole graph, in process: frames enter as a TAP batch hands them over
 * (slots already filled, `receiveSlot`, one `run()` per batch of 256) on the forwarding
 * benchmarks' node (bench/dataplane-setup.ts) with flannel.1 (VNI 1, local 192.168.50.11)
 * and one peer node (10.244.2.0/24 at 192.168.50.12, its underlay MAC known).
 *
 *   vxlan.l3-forward.64B   the same node routing pod p0's 64-byte UDP frames out of the
 *                          uplink: the baseline of this run (as dataplane.l3-forward)
 *   vxlan.encap.64B        pod p0's 64-byte frames to 256 pods of 10.244.2.0/24 (256 flows):
 *                          routed to flannel.1 (ip4-forward, POSTROUTING, the permanent
 *                          neighbour), encapsulated (FDB lookup, flow hash, outer IPv4/UDP/
 *                          VXLAN), LOCAL_OUT, route lookup to the VTEP, POSTROUTING, ARP
 *                          entry of the uplink, out: 114-byte frames on `up`
 *   vxlan.decap.64B        114-byte VXLAN frames from the peer carrying 64-byte frames from
 *                          256 peer pods to pod p0: local delivery to the VTEP port,
 *                          decapsulation (VNI, known VTEP, inner MACs), then routed into
 *                          cni0 as any frame: 64-byte frames on p0
 *   vxlan.*.ratio          encap or decap / l3-forward of this run, CPU time
 *
 * Before each frame the bench writes back the bytes the path rewrote (MACs, TTL, IPv4
 * checksum), from the frame as received; that cost is included. The machine is shared:
 * besides wall-clock rates each row has `perCpuSecond` (ops per second of this process's own
 * CPU time). `bytesAllocPerOp` is the JS heap per packet (0: nothing allocated).
 */
import { parseConfig } from '../src/config/load.ts';
import { VirtualClock } from '../src/core/clock.ts';
import { Dataplane } from '../src/dataplane/dataplane.ts';
import { NeighState } from '../src/tables/neighbour-table.ts';
import { r2, row } from './cpu-time.ts';
import { BATCH, BENCH_CONFIG, CountingSink, forwarding, ipChecksum, podMac, routedBytes } from './dataplane-setup.ts';
import type { BenchResult } from './harness.ts';

const GATEWAY_MAC = Buffer.from([0x0a, 0x58, 0x0a, 0xf4, 0x01, 0x01]);
const UP_MAC = Buffer.from([0x02, 0x00, 0x00, 0x00, 0x50, 0x11]);
const PEER_MAC = Buffer.from([0x02, 0x00, 0x00, 0x00, 0x50, 0x12]);
const FLANNEL_MAC = Buffer.from([0x0e, 0x00, 0x00, 0x00, 0x00, 0x01]);
const PEER_VTEP_MAC = Buffer.from([0x0e, 0x00, 0x00, 0x00, 0x00, 0x02]);
const POD1 = 0x0af40102;
const PEER_PODS = 0x0af40200;
const NODE = 0xc0a8320b;
const PEER = 0xc0a8320c;
const UP_PORT = 4;
const T0 = 1_700_000_000_000_000;

const VXLAN_CONFIG = `vxlan:
  - name: flannel.1
    vni: 1
    local: 192.168.50.11
    address: 10.244.1.0/32
    mac: 0e:00:00:00:00:01
    peers:
      - { vtep: 192.168.50.12, mac: 0e:00:00:00:00:02, subnet: 10.244.2.0/24 }
`;

interface Bench {
  dp: Dataplane;
  sinks: CountingSink[];
}

function makeDataplane(): Bench {
  const clock = new VirtualClock();
  clock.set(T0);
  const dp = new Dataplane(parseConfig(BENCH_CONFIG + VXLAN_CONFIG, 'bench'), { clock, poolSize: 4096 });
  const sinks = dp.ctx.ports.names.map(() => new CountingSink());
  sinks.forEach((s, p) => dp.setDriver(p, s));
  const now = clock.nowUs();
  for (let h = 1; h <= 4; h++) {
    const m = podMac(h);
    dp.ctx.fdb.learn(0, m.readUInt16BE(0), m.readInt32BE(2), h - 1, now);
  }
  const up = dp.ctx.ifs.indexOf('up');
  for (const [ip, lo] of [[0xc0a83201, 0x5001], [PEER, 0x5012]]) {
    const id = dp.ctx.neigh.create(up, ip, now);
    dp.ctx.neigh.update(id, 0x0200, lo, NeighState.PERMANENT, now);
  }
  const pod = dp.ctx.neigh.create(dp.ctx.ifs.indexOf('cni0'), POD1, now);
  const m = podMac(1);
  dp.ctx.neigh.update(pod, m.readUInt16BE(0), m.readInt32BE(2), NeighState.PERMANENT, now);
  return { dp, sinks };
}

/** An Ethernet/IPv4/UDP frame of `size` bytes (UDP checksum zero). */
function udpFrame(dstMac: Buffer, srcMac: Buffer, src: number, dst: number, sport: number, dport: number, size: number): Buffer {
  const f = Buffer.alloc(size);
  dstMac.copy(f, 0);
  srcMac.copy(f, 6);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(size - 14, 16);
  f[22] = 64;
  f[23] = 17;
  f.writeUInt32BE(src >>> 0, 26);
  f.writeUInt32BE(dst >>> 0, 30);
  f.writeUInt16BE(ipChecksum(f, 14), 24);
  f.writeUInt16BE(sport, 34);
  f.writeUInt16BE(dport, 36);
  f.writeUInt16BE(size - 34, 38);
  return f;
}

/** `inner` as the peer node sends it: in VXLAN (VNI 1) in UDP to port 8472. */
function vxlanFrame(inner: Buffer, sport: number): Buffer {
  const payload = Buffer.concat([Buffer.from([0x08, 0, 0, 0, 0, 0, 1, 0]), inner]);
  const outer = udpFrame(UP_MAC, PEER_MAC, PEER, NODE, sport, 8472, 42 + payload.length);
  payload.copy(outer, 42);
  return outer;
}

const SIZE = 64;

/** The three workloads of this file, each fn(n) moving n packets (for the bench, or a profiler). */
export function vxlanWorkloads(): { l3: (n: number) => void; encap: (n: number) => void; decap: (n: number) => void } {
  const base = makeDataplane();
  const baseFlows: Buffer[] = [];
  for (let i = 0; i < BATCH; i++) baseFlows.push(udpFrame(GATEWAY_MAC, podMac(1), POD1, 0x5db80005, 40000 + i, 443, SIZE));
  const enc = makeDataplane();
  const encFlows: Buffer[] = [];
  for (let i = 0; i < BATCH; i++) encFlows.push(udpFrame(GATEWAY_MAC, podMac(1), POD1, PEER_PODS + 2 + i, 40000, 5201, SIZE));
  const dec = makeDataplane();
  const decFlows: Buffer[] = [];
  for (let i = 0; i < BATCH; i++) decFlows.push(vxlanFrame(udpFrame(FLANNEL_MAC, PEER_VTEP_MAC, PEER_PODS + 2 + i, POD1, 5201, 40000, SIZE), 33000 + i));
  return {
    l3: forwarding(base, baseFlows, 0, UP_PORT, routedBytes(0)),
    encap: forwarding(enc, encFlows, 0, UP_PORT, routedBytes(0)),
    decap: forwarding(dec, decFlows, UP_PORT, 0, routedBytes(50)),
  };
}

export async function benchVxlan(): Promise<BenchResult[]> {
  const size = SIZE;
  const w = vxlanWorkloads();
  // The first measurement of a process runs while V8 still compiles the graph: warm up first.
  w.l3(2_000_000);
  const l3 = row(`vxlan.l3-forward.${size}B`, w.l3, { bytes: size, batch: BATCH });
  w.encap(1_000_000);
  const e = row(`vxlan.encap.${size}B`, w.encap, { bytes: size, wireBytes: size + 50, batch: BATCH, flows: BATCH });
  w.decap(1_000_000);
  const d = row(`vxlan.decap.${size}B`, w.decap, { bytes: size, wireBytes: size + 50, batch: BATCH, flows: BATCH });
  return [
    l3,
    e,
    d,
    { bench: `vxlan.encap.${size}B.ratio`, wallClock: r2((e.pps as number) / (l3.pps as number)), cpuTime: r2((e.perCpuSecond as number) / (l3.perCpuSecond as number)) },
    { bench: `vxlan.decap.${size}B.ratio`, wallClock: r2((d.pps as number) / (l3.pps as number)), cpuTime: r2((d.perCpuSecond as number) / (l3.perCpuSecond as number)) },
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await benchVxlan()) process.stdout.write(`${JSON.stringify(r)}\n`);
}
