/**
 * Masquerade and connection tracking through the whole graph, in process: frames enter as a
 * TAP batch hands them over (slots already filled, `receiveSlot`, one `run()` per batch of
 * 256) on the forwarding benchmarks' node (bench/dataplane-setup.ts: cni0 with four pod
 * ports, an L3 uplink with the default route), here with `nat: { clusterCIDR:
 * 10.244.0.0/16 }`.
 *
 *   nat.l3-forward.64B          the same node without nat (connection tracking off): the
 *                               baseline of this run, as dataplane.l3-forward
 *   nat.masquerade.64B          256 established masqueraded UDP flows (replied once, so
 *                               ESTABLISHED both ways, and active past their first 2 s, so
 *                               streams, as Linux calls them) from pod p0 to the outside: per packet
 *                               conntrack-in (lookup, UDP step, refresh), the destination
 *                               manip (nothing to do), routing, the INVALID filter, the
 *                               source rewrite (address, IPv4 and UDP checksums), confirm
 *   nat.masquerade.64B.ratio    masquerade / l3-forward of this run, wall clock and CPU time
 *   nat.masquerade.64B.1flow    the same with one flow (one iperf3 stream): its entry stays
 *                               in cache; and its ratio
 *   nat.conntrack.64B           the same flows with `conntrack: {}` and no nat: tracking
 *                               alone, no rewrite
 *   nat.new-flows               every packet a new UDP flow from p0 to the outside
 *                               (a destination and source port no earlier packet had):
 *                               lookup miss, create, masquerade (NatPortAllocator keeps
 *                               the port), rewrite, confirm. conntrack.max 1,000,000; the
 *                               virtual clock advances 40 µs a packet, so each flow times out
 *                               (30 s unreplied) 750,000 flows later and the table stays
 *                               three quarters full, reclaimed by the expiry every run() does (cost
 *                               included). One op = one new flow = one packet.
 *
 * Before each frame the bench writes back the bytes forwarding rewrote (MACs, TTL, IPv4
 * checksum: 15 bytes, as dataplane.bench does) and, masqueraded, the source address and UDP
 * checksum too (21 bytes), from the frame as received, as a receive
 * path would have written fresh bytes; for new-flows it writes the headers (42 bytes) with
 * the next tuple and its IPv4 checksum. That cost is included.
 *
 * The machine these run on is shared: besides wall-clock rates, each row has
 * `perCpuSecond`, ops per second of this process's own CPU time (process.cpuUsage) over a
 * separate ~0.5 s of CPU, as the conntrack table's bench reports.
 */
import { parseConfig } from '../src/config/load.ts';
import { VirtualClock } from '../src/core/clock.ts';
import { Dataplane } from '../src/dataplane/dataplane.ts';
import { NeighState } from '../src/tables/neighbour-table.ts';
import { cpuRatio, r2, row } from './cpu-time.ts';
import { BATCH, BENCH_CONFIG, CountingSink, ROUTED_BYTES, forwarding, ipChecksum, podMac } from './dataplane-setup.ts';
import type { BenchResult } from './harness.ts';

export const GATEWAY_MAC = Buffer.from([0x0a, 0x58, 0x0a, 0xf4, 0x01, 0x01]);
export const UP_MAC = Buffer.from([0x02, 0x00, 0x00, 0x00, 0x50, 0x11]);
export const UPSTREAM_MAC = Buffer.from([0x02, 0x00, 0x00, 0x00, 0x50, 0x01]);
export const POD1 = 0x0af40102;
const NODE = 0xc0a8320b; // 192.168.50.11, the uplink's address
const SERVER = 0x5db80000; // 93.184.0.0: servers outside
export const UP_PORT = 4;
const T0 = 1_700_000_000_000_000;

export interface Bench {
  dp: Dataplane;
  clock: VirtualClock;
  sinks: CountingSink[];
}

export function makeDataplane(extraYaml: string, poolSize = 4096): Bench {
  const clock = new VirtualClock();
  clock.set(T0);
  const dp = new Dataplane(parseConfig(BENCH_CONFIG + extraYaml, 'bench'), { clock, poolSize });
  const sinks = dp.ctx.ports.names.map(() => new CountingSink());
  sinks.forEach((s, p) => dp.setDriver(p, s));
  const now = clock.nowUs();
  for (let h = 1; h <= 4; h++) {
    const m = podMac(h);
    dp.ctx.fdb.learn(0, m.readUInt16BE(0), m.readInt32BE(2), h - 1, now);
  }
  const gw = dp.ctx.neigh.create(dp.ctx.ifs.indexOf('up'), 0xc0a83201, now);
  dp.ctx.neigh.update(gw, 0x0200, 0x00005001, NeighState.PERMANENT, now);
  // Pod p0 (10.244.1.2) is known, so replies to it need no ARP.
  const pod = dp.ctx.neigh.create(dp.ctx.ifs.indexOf('cni0'), POD1, now);
  const m = podMac(1);
  dp.ctx.neigh.update(pod, m.readUInt16BE(0), m.readInt32BE(2), NeighState.PERMANENT, now);
  return { dp, clock, sinks };
}

/** An Ethernet/IPv4/UDP frame of `size` bytes; UDP checksum `udpCsum` (0: none). */
export function udpFrame(dstMac: Buffer, srcMac: Buffer, src: number, dst: number, sport: number, dport: number, size: number): Buffer {
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
  // A real UDP checksum, so the masquerade's incremental update is exercised.
  let s = (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + 17 + (size - 34);
  for (let i = 34; i < size; i += 2) s += (f[i] << 8) | (i + 1 < size ? f[i + 1] : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  f.writeUInt16BE(~s & 0xffff || 0xffff, 40);
  return f;
}

/** Receives one frame now and runs the graph (setup only). */
export function send(b: Bench, port: number, frame: Buffer): void {
  b.dp.receive(port, frame);
  b.dp.run();
}

/** What masquerade rewrites besides routing: the source address and the UDP checksum (the port is kept). */
const MASQUERADED_BYTES = [...ROUTED_BYTES, 26, 27, 28, 29, 40, 41];

/**
 * 256 UDP flows from pod p0 (source ports 40000..) to one server's port 443, each answered
 * once so it is ESTABLISHED both ways: the server answers the node's address when the flow
 * is masqueraded (`nat`), the pod's otherwise.
 */
function establishedFlows(b: Bench, size: number, nat: boolean, count = BATCH): Buffer[] {
  const flows: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const f = udpFrame(GATEWAY_MAC, podMac(1), POD1, SERVER + 5, 40000 + i, 443, size);
    flows.push(f);
    send(b, 0, f);
    send(b, UP_PORT, udpFrame(UP_MAC, UPSTREAM_MAC, SERVER + 5, nat ? NODE : POD1, 443, 40000 + i, size));
  }
  // 3 s later each flow sends again: replied and past its first 2 s, it is a UDP stream (the
  // 120 s timeout), what an established flow is after its first seconds.
  b.clock.set(b.clock.nowUs() + 3_000_000);
  for (const f of flows) send(b, 0, f);
  const ct = b.dp.ctx.conntrack;
  if (ct !== null && ct.count !== count) throw new Error(`expected ${count} entries, found ${ct.count}`);
  return flows;
}

function newFlows(b: Bench, size: number): (n: number) => void {
  const pool = b.dp.pool;
  const data = pool.data;
  const dp = b.dp;
  const clock = b.clock;
  const frame = udpFrame(GATEWAY_MAC, podMac(1), POD1, SERVER, 1024, 443, size);
  // No UDP checksum: the tuple changes per packet and the bench would have to recompute it.
  frame.writeUInt16BE(0, 40);
  let flow = 0;
  let now = clock.nowUs();
  const out = b.sinks[UP_PORT];
  return (packets: number): void => {
    const before = out.frames;
    for (let done = 0; done < packets; done += BATCH) {
      const n = Math.min(BATCH, packets - done);
      for (let i = 0; i < n; i++) {
        const s = pool.alloc();
        const o = pool.start[s];
        for (let k = 0; k < 42; k++) data[o + k] = frame[k];
        // Flow k: destination 93.184.x.y (x.y = k mod 65536), source port 1024 + k / 65536.
        const lo = flow & 0xffff;
        const port = 1024 + ((flow >>> 16) % 64000);
        flow++;
        data[o + 32] = lo >>> 8;
        data[o + 33] = lo;
        data[o + 34] = port >>> 8;
        data[o + 35] = port;
        // IPv4 checksum: the template's, with the new low address half added (RFC 1624).
        let c = (~((frame[24] << 8) | frame[25]) & 0xffff) + lo;
        c = (c & 0xffff) + (c >>> 16);
        c = ~c & 0xffff;
        data[o + 24] = c >>> 8;
        data[o + 25] = c;
        pool.len[s] = size;
        dp.receiveSlot(0, s);
      }
      now += 40 * n;
      clock.set(now);
      dp.run();
    }
    if (out.frames - before !== packets) throw new Error(`new-flows: only ${out.frames - before} of ${packets} new flows left`);
  };
}


export async function benchNat(): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  const size = 64;
  const base = makeDataplane('');
  const baseFlows: Buffer[] = [];
  for (let i = 0; i < BATCH; i++) baseFlows.push(udpFrame(GATEWAY_MAC, podMac(1), POD1, SERVER + 5, 40000 + i, 443, size));
  const baseFn = forwarding(base, baseFlows, 0, UP_PORT, ROUTED_BYTES);
  // The first measurement of a process runs while V8 still compiles the graph: warm up first.
  baseFn(2_000_000);
  const l3 = row(`nat.l3-forward.${size}B`, baseFn, { bytes: size, batch: BATCH });
  results.push(l3);

  const masq = makeDataplane('nat: { clusterCIDR: 10.244.0.0/16 }\n');
  const masqFn = forwarding(masq, establishedFlows(masq, size, true), 0, UP_PORT, MASQUERADED_BYTES);
  const m = row(`nat.masquerade.${size}B`, masqFn, { bytes: size, batch: BATCH, flows: BATCH });
  results.push(m);
  results.push({
    bench: `nat.masquerade.${size}B.ratio`,
    // Of the two rows above (wall clock, then CPU time), and the median of 7 alternating
    // CPU-time measurements of 512,000 packets each: the figure least moved by other load.
    wallClock: r2((m.pps as number) / (l3.pps as number)),
    cpuTime: r2((m.perCpuSecond as number) / (l3.perCpuSecond as number)),
    cpuTimeAlternating: r2(cpuRatio(masqFn, baseFn, 7, 512_000)),
  });

  const one = makeDataplane('nat: { clusterCIDR: 10.244.0.0/16 }\n');
  const oneFn = forwarding(one, establishedFlows(one, size, true, 1), 0, UP_PORT, MASQUERADED_BYTES);
  const m1 = row(`nat.masquerade.${size}B.1flow`, oneFn, { bytes: size, batch: BATCH, flows: 1 });
  results.push(m1);
  results.push({
    bench: `nat.masquerade.${size}B.1flow.ratio`,
    wallClock: r2((m1.pps as number) / (l3.pps as number)),
    cpuTime: r2((m1.perCpuSecond as number) / (l3.perCpuSecond as number)),
    cpuTimeAlternating: r2(cpuRatio(oneFn, baseFn, 7, 512_000)),
  });

  const track = makeDataplane('conntrack: {}\n');
  results.push(row(`nat.conntrack.${size}B`, forwarding(track, establishedFlows(track, size, false), 0, UP_PORT, ROUTED_BYTES), { bytes: size, batch: BATCH, flows: BATCH }));

  const nf = makeDataplane('nat: { clusterCIDR: 10.244.0.0/16 }\nconntrack: { max: 1000000 }\n');
  const r = row('nat.new-flows', newFlows(nf, size), { bytes: size, batch: BATCH });
  const nct = nf.dp.ctx.conntrack!;
  const alloc = nf.dp.conntrackHooks!.allocator;
  Object.assign(r, { entries: nct.count, created: nct.created, earlyDrop: nct.earlyDrop, drop: nct.drop, kept: alloc.kept, remapped: alloc.remapped });
  results.push(r);
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await benchNat()) process.stdout.write(`${JSON.stringify(r)}\n`);
}
