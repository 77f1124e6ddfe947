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
 *                neighbour-output and interface-output would have done; everything else
 *                (a miss, a stale entry, fragmentation, a hook at work) takes `output`.
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
import { RouteKind } from '../tables/fib.ts';
import { IfKind } from '../tables/interface-table.ts';
import { NeighState } from '../tables/neighbour-table.ts';
import { writeEthernetHiLo } from '../wire/ethernet.ts';
import { macHiAt, macLoAt, rd32i, wr16 } from '../wire/bytes.ts';
import { internetChecksum } from '../wire/checksum.ts';
import { writeIpv4 } from '../wire/ipv4.ts';
import { writeUdpHeader } from '../wire/udp.ts';
import { VirtioGso } from '../wire/virtio-net.ts';
import { writeVxlanHeader } from '../wire/vxlan.ts';
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
const TWO_POW_MINUS_32 = 1 / 4294967296;

/**
 * The outer UDP source port for an inner flow: a seeded hash of (src, dst, protocol, ports)
 * mixed as udp_flow_src_port does (hash ^= hash << 16) and scaled into [min, max).
 */
export function vxlanSourcePort(seed: number, src: number, dst: number, proto: number, ports: number): number {
  let h = Math.imul(seed ^ src, 0xcc9e2d51);
  h = Math.imul((h << 15) | (h >>> 17), 0x1b873593) ^ dst;
  h = Math.imul((h << 13) | (h >>> 19), 5) + 0xe6546b64;
  h = Math.imul(h ^ ports, 0xcc9e2d51) ^ proto;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  h ^= h << 16;
  return (((h >>> 0) * (VXLAN_SPORT_MAX - VXLAN_SPORT_MIN) * TWO_POW_MINUS_32) | 0) + VXLAN_SPORT_MIN;
}

export class VxlanEncap extends Stage<'output' | 'tx'> {
  readonly name = 'vxlan-encap';
  readonly nextNames = ['output', 'tx'] as const;
  /** The hooks the outer packet passes (LOCAL_OUT, POSTROUTING): `tx` is taken only while both are empty. */
  private hooks: HookStage<string>[] = [];
  readonly dropReasons = dropReasons([
    ['vxlan.no-fdb-entry', 'no vxlan fdb entry for the inner destination mac'],
    ['vxlan.no-headroom', 'no headroom for the outer headers'],
  ]);

  constructor(private readonly ctx: Context) {
    super(ctx.pool);
  }

  /** Names the hooks whose handlers, when there are any, every outer packet must meet. */
  watchHooks(...hooks: HookStage<string>[]): void {
    this.hooks = hooks;
  }

  protected process(slots: Int32Array, n: number): void {
    const { pool, vxlan } = this.ctx;
    const data = pool.data;
    const slotSize = pool.slotSize;
    const seed = this.ctx.flowHashSeed;
    const output = this.next.output;
    let direct = this.tracer === null;
    for (let h = 0; h < this.hooks.length; h++) if (this.hooks[h].handlers.length !== 0) direct = false;
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
      // The inner flow: IPv4 addresses, protocol, and the ports when the header is here.
      const ip = pool.l3[slot];
      const l4 = pool.l4[slot];
      const proto = data[ip + 9];
      const ports = l4 !== 0 && (proto === 6 || proto === 17) ? rd32i(data, l4) : 0;
      const sport = vxlanSourcePort(seed, rd32i(data, ip + 12), rd32i(data, ip + 16), proto, ports);
      // ECN: the inner packet's codepoint, CE as ECT(0) (INET_ECN_encapsulate).
      const ecn = data[ip + 1] & 3;
      const outerIp = o + 14;
      const ident = this.ctx.ipIdent;
      this.ctx.ipIdent = (ident + segments) & 0xffff;
      writeIpv4(data, outerIp, ecn === 3 ? 2 : ecn, len + 36, ident & 0xffff, 0, OUTER_TTL, 17, vxlan.local[d], vxlan.fdbDst[fdb]);
      writeUdpHeader(data, outerIp + 20, sport, vxlan.port[d], len + 16, 0);
      writeVxlanHeader(data, outerIp + 28, vxlan.vni[d]);
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
      if (direct && this.frameForPort(slot, outerIp, segTotal)) this.to(this.next.tx, slot);
      else this.to(output, slot);
    }
  }

  /**
   * Routes the outer packet and frames it for its L3 port when nothing but that would happen
   * on the way (see the header); false leaves the frame untouched for the full path. `total`:
   * the outer IPv4 length that must fit the port's MTU (a super-frame's segments').
   */
  private frameForPort(slot: number, ip: number, total: number): boolean {
    const { pool, fib, ifs, neigh } = this.ctx;
    const data = pool.data;
    const dst = rd32i(data, ip + 16);
    const route = fib.lookup(dst);
    if (route < 0) return false;
    const kind = fib.kind[route];
    if (kind !== RouteKind.GATEWAY && kind !== RouteKind.CONNECTED) return false;
    const ifIndex = fib.ifIndex[route];
    if (ifs.kind[ifIndex] !== IfKind.PORT || total > ifs.mtu[ifIndex]) return false;
    const nh = kind === RouteKind.GATEWAY ? fib.gateway[route] | 0 : dst;
    const id = neigh.find(ifIndex, nh);
    if (id < 0) return false;
    const state = neigh.state[id];
    const now = this.ctx.nowUs;
    if (state !== NeighState.PERMANENT && (state !== NeighState.REACHABLE || now - neigh.confirmedUs[id] > neigh.timers.reachableUs)) return false;
    writeEthernetHiLo(data, ip - 14, neigh.macHi[id], neigh.macLo[id], ifs.macHi[ifIndex], ifs.macLo[ifIndex], 0x0800);
    neigh.usedUs[id] = now;
    pool.txIf[slot] = ifIndex;
    pool.nextHop[slot] = nh;
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
