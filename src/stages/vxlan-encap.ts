/**
 * vxlan-encap: wraps a frame routed to a VXLAN device (flannel.1) in outer Ethernet, IPv4, UDP
 * and VXLAN headers (RFC 7348), as Linux's vxlan driver does for flannel, and sends the outer
 * packet on as one the router originates.
 *
 * in:   frames leaving a VXLAN interface (interface-output): the inner Ethernet header written
 *       by neighbour-output (destination: the peer VTEP's MAC from the neighbour entry,
 *       source: the device's MAC), txIf the device, l3/l4 at the inner headers. Whole frames,
 *       and TCPv4 super-frames when the ports take UDP-tunnel super-frames (interface-output
 *       sends other super-frames to tcp-segment first).
 * out:  output — the outer IPv4 packet (l3, l4 at the outer headers, inPort NO_PORT), through
 *                the LOCAL_OUT hook, ip4-output's route lookup to the VTEP, POSTROUTING and
 *                neighbour resolution on the L3 port: conntrack, capture and trace see it
 *       tx     — the same packet framed for the L3 port, when that path would do nothing
 *                but route and frame it: LOCAL_OUT and POSTROUTING without handlers, no
 *                tracer, the route an L3 port's, the packet within its MTU and the next
 *                hop's neighbour entry PERMANENT or REACHABLE and fresh. The route lookup,
 *                the neighbour entry's use and the Ethernet header are what ip4-output,
 *                neighbour-output and interface-output would have done (the route and the
 *                entry are looked up once per FDB entry and kept until routes, neighbour
 *                entries or the FDB change; states and MACs are read per packet); everything else
 *                (a miss, a stale entry, fragmentation, a hook at work) takes `output`.
 *       socket — for a device with `underlay: socket`: the inner frame behind the VXLAN header
 *                alone (start at that header), nextHop the remote VTEP, for the device's
 *                kernel UDP socket (vxlan-socket-tx), whose stack adds the rest
 * drop: no FDB entry for the inner destination MAC (Linux without a default remote drops it
 *       the same way); too little headroom in front of the frame (never with pool slots).
 *
 * The outer headers, as Linux's defaults for `ip link add flannel.1 type vxlan id 1 local A
 * dstport 8472 nolearning` are:
 * - 50 bytes written into the slot's headroom in front of the inner frame (no copy);
 * - IPv4 from the device's `local` to the FDB entry's address, TTL 64 (ip4_dst_hoplimit: the
 *   vxlan `ttl` is unset), TOS 0 with the inner packet's ECN bits (ip_tunnel_ecn_encap), DF
 *   clear (vxlan `df` unset), the identification from the router's counter;
 * - UDP from a port hashed from the inner flow (addresses, protocol, ports) into Linux's
 *   ephemeral range 32768–60998 (udp_flow_src_port), stable per flow, to the device's port,
 *   checksum zero (vxlan `udpcsum` is off by default for IPv4);
 * - VXLAN with the I flag and the device's VNI.
 * An inner L4 checksum left to complete (a virtio-net NEEDS_CSUM frame) is completed first,
 * so the frame inside is correct on the wire whatever the underlay does with it.
 *
 * A TCP super-frame is encapsulated whole as a UDP-tunnel super-frame, as Linux's vxlan
 * driver hands one to a device with NETIF_F_GSO_UDP_TUNNEL: the outer headers describe the
 * whole (IPv4 total and UDP lengths), the GSO type gains UDP_TUNNEL_IPV4, the inner TCP
 * checksum stays partial, and the outer UDP and inner IPv4 offsets go to the virtio-net
 * header: the kernel that receives it segments it (or takes it whole), each segment with its
 * own outer lengths, identification and checksums. The router's identification counter moves
 * on by the number of segments.
 */
import { NO_PORT } from '../core/frame-pool.ts';
import type { HookStage } from '../core/hook.ts';
import { dropReasons } from '../core/drop-reason.ts';
import { Stage } from '../core/stage.ts';
import { type Fib, RouteKind } from '../tables/fib.ts';
import { IfKind } from '../tables/interface-table.ts';
import { NeighState } from '../tables/neighbour-table.ts';
import { writeEthernetHiLo } from '../wire/ethernet.ts';
import { macHiAt, macLoAt, rd32i, wr16 } from '../wire/bytes.ts';
import { internetChecksum } from '../wire/checksum.ts';
import { VirtioGso } from '../wire/virtio-net.ts';
import { VXLAN_HLEN, writeVxlanHeader, writeVxlanOuterHeaders } from '../wire/vxlan.ts';
import type { Context } from './context.ts';

const enum Drop {
  NO_FDB,
  NO_HEADROOM,
}

/** Outer Ethernet (14) + IPv4 (20) + UDP (8) + VXLAN (8). */
export const VXLAN_OVERHEAD = 50;
/** Linux's default ip_local_port_range, which udp_flow_src_port maps the flow hash into. */
export const VXLAN_SPORT_MIN = 32768;
export const VXLAN_SPORT_MAX = 60999;
const OUTER_TTL = 64;
/** From the outer frame's start: the outer UDP header, and the inner IPv4 header. */
const OUTER_UDP = 14 + 20;
const INNER_IP = OUTER_UDP + 8 + 8 + 14;
const SPORT_RANGE = VXLAN_SPORT_MAX - VXLAN_SPORT_MIN;

/**
 * The outer UDP source port for an inner flow: a seeded hash of (src, dst, protocol, ports),
 * its top 16 bits scaled into [min, max) as udp_flow_src_port scales the flow hash (stable
 * per flow, spread across flows). Integer-only, so nothing on the way is a double.
 */
export function vxlanSourcePort(seed: number, src: number, dst: number, proto: number, ports: number): number {
  let h = Math.imul(src ^ seed, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 15) ^ dst, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ ports, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16) ^ proto, 0x27d4eb2f);
  h ^= h >>> 15;
  return (((h >>> 16) * SPORT_RANGE) >>> 16) + VXLAN_SPORT_MIN;
}

export class VxlanEncap extends Stage<'output' | 'tx' | 'socket'> {
  readonly name = 'vxlan-encap';
  readonly nextNames = ['output', 'tx', 'socket'] as const;
  /** The hooks the outer packet passes (LOCAL_OUT, POSTROUTING): `tx` is taken only while both are empty. */
  private hooks: HookStage<string>[] = [];
  readonly dropReasons = dropReasons([
    ['vxlan.no-fdb-entry', 'no vxlan fdb entry for the inner destination mac'],
    ['vxlan.no-headroom', 'no headroom for the outer headers'],
  ]);
  /**
   * Per FDB entry, what the outer packets' route and neighbour lookups found (see `resolve`),
   * valid while `cacheEpoch[fdb]` is the current epoch: the tables it came from have not
   * changed since. Neighbour states (and their MACs) are read afresh for every packet.
   */
  private readonly cacheEpoch: Int32Array;
  private readonly cacheNeigh: Int32Array;
  private readonly cacheIf: Int32Array;
  private readonly cacheNextHop: Int32Array;
  private epoch = 0;
  private seenFib: Fib | null = null;
  private seenFibVersion = -1;
  private seenNeighVersion = -1;
  private seenFdbVersion = -1;
  private reachableUs = 0;

  constructor(private readonly ctx: Context) {
    super(ctx.pool);
    const n = ctx.vxlan.fdbCapacity;
    this.cacheEpoch = new Int32Array(n).fill(-1);
    this.cacheNeigh = new Int32Array(n).fill(-1);
    this.cacheIf = new Int32Array(n);
    this.cacheNextHop = new Int32Array(n);
  }

  /** Names the hooks whose handlers, when there are any, every outer packet must meet. */
  watchHooks(...hooks: HookStage<string>[]): void {
    this.hooks = hooks;
  }

  protected process(slots: Int32Array, n: number): void {
    const ctx = this.ctx;
    const { pool, vxlan } = ctx;
    const data = pool.data;
    const slotSize = pool.slotSize;
    const seed = ctx.flowHashSeed;
    const output = this.out.output;
    const tx = this.out.tx;
    let direct = this.tracer === null;
    for (let h = 0; h < this.hooks.length; h++) if (this.hooks[h].handlers.length !== 0) direct = false;
    if (direct) {
      this.checkCache();
      this.reachableUs = ctx.neigh.timers.reachableUs;
    }
    const epoch = this.epoch;
    for (let i = 0; i < n; i++) {
      const slot = slots[i];
      const ifIndex = pool.txIf[slot];
      const s = pool.start[slot];
      const fdb = vxlan.findFdb(ifIndex, macHiAt(data, s), macLoAt(data, s));
      if (fdb < 0) {
        this.drop(slot, Drop.NO_FDB);
        continue;
      }
      const o = s - VXLAN_OVERHEAD;
      if (o < slot * slotSize) {
        this.drop(slot, Drop.NO_HEADROOM);
        continue;
      }
      const d = vxlan.deviceOfIf[ifIndex];
      const len = pool.len[slot];
      // IPv4 total of the outer packet, and of each of its segments for a super-frame.
      let segTotal = len + 36;
      let segments = 1;
      if (pool.gsoType[slot] !== 0) {
        // A TCP super-frame (interface-output checked it): headers, then gsoSize-byte segments.
        const th = s + pool.csumStart[slot];
        const headers = th + ((data[th + 12] >>> 4) << 2) - s;
        const mss = pool.gsoSize[slot];
        segTotal = headers + mss + 36;
        segments = mss === 0 ? 1 : Math.max(1, Math.ceil((len - headers) / mss));
        pool.gsoType[slot] |= VirtioGso.UDP_TUNNEL_IPV4;
        pool.gsoHdrLen[slot] = headers + VXLAN_OVERHEAD;
        pool.csumStart[slot] += VXLAN_OVERHEAD;
        pool.outerThOffset[slot] = OUTER_UDP;
        pool.innerNhOffset[slot] = INNER_IP;
      } else if ((pool.vnetFlags[slot] & 1) !== 0) {
        this.completeChecksum(slot, s, len);
      }
      if (vxlan.socket[d] === 1) {
        // The kernel's socket adds the outer IPv4 and UDP headers: only VXLAN's go in here.
        const v = s - VXLAN_HLEN;
        writeVxlanHeader(data, v, vxlan.vni[d]);
        pool.start[slot] = v;
        pool.len[slot] = len + VXLAN_HLEN;
        pool.nextHop[slot] = vxlan.fdbDst[fdb];
        pool.inPort[slot] = NO_PORT;
        this.to(this.out.socket, slot);
        continue;
      }
      // The inner flow: IPv4 addresses, protocol, and the ports when the header is here.
      const ip = pool.l3[slot];
      const l4 = pool.l4[slot];
      const proto = data[ip + 9];
      const ports = l4 !== 0 && (proto === 6 || proto === 17) ? rd32i(data, l4) : 0;
      const sport = vxlanSourcePort(seed, rd32i(data, ip + 12), rd32i(data, ip + 16), proto, ports);
      // ECN: the inner packet's codepoint, CE as ECT(0) (INET_ECN_encapsulate).
      const ecn = data[ip + 1] & 3;
      const outerIp = o + 14;
      const ident = ctx.ipIdent & 0xffff;
      ctx.ipIdent = (ident + segments) & 0xffff;
      writeVxlanOuterHeaders(data, outerIp, ecn === 3 ? 2 : ecn, len + 36, ident, OUTER_TTL, vxlan.local[d], vxlan.fdbDst[fdb], sport, vxlan.port[d], vxlan.vni[d]);
      pool.start[slot] = o;
      pool.len[slot] = len + VXLAN_OVERHEAD;
      pool.l3[slot] = outerIp;
      pool.l4[slot] = outerIp + 20;
      pool.txIf[slot] = -1;
      pool.nextHop[slot] = 0;
      pool.inPort[slot] = NO_PORT;
      pool.rxIf[slot] = -1;
      pool.icmpError[slot] = 0;
      pool.ct[slot] = -1;
      pool.ctDir[slot] = 0;
      pool.ctState[slot] = 0;
      if (direct) {
        if (this.cacheEpoch[fdb] !== epoch) this.resolve(fdb, epoch);
        if (this.frameForPort(slot, fdb, outerIp, segTotal)) {
          this.to(tx, slot);
          continue;
        }
      }
      this.to(output, slot);
    }
  }

  /**
   * Starts a new cache epoch when the tables the cache was filled from have changed (routes,
   * neighbour entries created or removed, the FDB) or the FIB was replaced by a reload.
   */
  private checkCache(): void {
    const { fib, neigh, vxlan } = this.ctx;
    if (fib === this.seenFib && fib.version === this.seenFibVersion && neigh.version === this.seenNeighVersion && vxlan.version === this.seenFdbVersion) return;
    this.seenFib = fib;
    this.seenFibVersion = fib.version;
    this.seenNeighVersion = neigh.version;
    this.seenFdbVersion = vxlan.version;
    this.epoch = (this.epoch + 1) | 0;
  }

  /**
   * What ip4-output's route lookup and neighbour-output's lookup would find for the outer
   * packets of FDB entry `fdb`, kept for this epoch: the L3 port, the next hop and its
   * neighbour entry, or no entry (-1) when that path would do more than route and frame
   * (no route, not an L3 port, no neighbour entry yet).
   */
  private resolve(fdb: number, epoch: number): void {
    const { fib, ifs, neigh, vxlan } = this.ctx;
    this.cacheEpoch[fdb] = epoch;
    this.cacheNeigh[fdb] = -1;
    const dst = vxlan.fdbDst[fdb];
    const route = fib.lookup(dst);
    if (route < 0) return;
    const kind = fib.kind[route];
    if (kind !== RouteKind.GATEWAY && kind !== RouteKind.CONNECTED) return;
    const ifIndex = fib.ifIndex[route];
    if (ifs.kind[ifIndex] !== IfKind.PORT) return;
    const nh = kind === RouteKind.GATEWAY ? fib.gateway[route] | 0 : dst;
    this.cacheIf[fdb] = ifIndex;
    this.cacheNextHop[fdb] = nh;
    this.cacheNeigh[fdb] = neigh.find(ifIndex, nh);
  }

  /**
   * Frames the outer packet for its L3 port when nothing but routing and framing would happen
   * on the way (see the header): the cached route and neighbour entry of its FDB entry, the
   * entry PERMANENT or fresh REACHABLE, the packet within the port's MTU (`total`: the outer
   * IPv4 length, a super-frame's segments'). False leaves the frame to the full path.
   */
  private frameForPort(slot: number, fdb: number, ip: number, total: number): boolean {
    const id = this.cacheNeigh[fdb];
    if (id < 0) return false;
    const { pool, ifs, neigh } = this.ctx;
    const ifIndex = this.cacheIf[fdb];
    if (total > ifs.mtu[ifIndex]) return false;
    const state = neigh.state[id];
    const now = this.ctx.nowUs;
    if (state !== NeighState.PERMANENT && (state !== NeighState.REACHABLE || now - neigh.confirmedUs[id] > this.reachableUs)) return false;
    writeEthernetHiLo(pool.data, ip - 14, neigh.macHi[id], neigh.macLo[id], ifs.macHi[ifIndex], ifs.macLo[ifIndex], 0x0800);
    neigh.usedUs[id] = now;
    pool.txIf[slot] = ifIndex;
    pool.nextHop[slot] = this.cacheNextHop[fdb];
    pool.outPort[slot] = ifs.target[ifIndex];
    return true;
  }

  /** Stores the L4 checksum a NEEDS_CSUM frame left to complete (its pseudo header is in place). */
  private completeChecksum(slot: number, s: number, len: number): void {
    const pool = this.ctx.pool;
    const data = pool.data;
    const from = s + pool.csumStart[slot];
    const at = from + pool.csumOffset[slot];
    if (at + 2 <= s + len) {
      const c = internetChecksum(data, from, s + len - from, 0);
      // The field holds the pseudo-header sum already: summing over it completes the checksum.
      wr16(data, at, pool.l4[slot] !== 0 && data[pool.l3[slot] + 9] === 17 && c === 0 ? 0xffff : c);
    }
    pool.vnetFlags[slot] = 0;
    pool.csumStart[slot] = 0;
    pool.csumOffset[slot] = 0;
  }
}
