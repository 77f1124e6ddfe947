/**
 * vxlan-decap: unwraps VXLAN (RFC 7348) arriving for a VXLAN device's local address and UDP
 * port, and lets the inner frame in as received on the device (Linux's vxlan_rcv).
 *
 * in:   UDP datagrams to one of our addresses whose destination port a VXLAN device listens
 *       on at that address (ip4-local sorts them here, fragments reassembled before; or
 *       ip4-lookup straight away while the input hook has no handlers), l3/l4 at the outer
 *       headers
 * out:  ip4 — the inner frame, start and len moved past the outer headers (no copy), rxIf the
 *             device, inPort still the underlay port (it is forwarded, not originated), the
 *             outer packet's conntrack state cleared: an IPv4 frame goes to ip4-input (l3
 *             set, as l3-input would) and PREROUTING as a frame of flannel.1
 *       l3  — any other inner frame (ARP, and what l3-input drops and counts)
 * drop: too short for UDP, VXLAN and an inner Ethernet header; a UDP length that does not fit;
 *       a malformed VXLAN header (I flag clear, or any other flag or reserved bit set: Linux
 *       treats unparsed bits as malformed); a VNI no device at that address and port has; a
 *       source address that is not a VTEP of the device's FDB (Linux with nolearning accepts
 *       any source; here the FDB is the list of peers, as flannel keeps it); an inner
 *       destination MAC that is another unicast host's; an inner source MAC that is the
 *       device's own (a looped frame, as vxlan_set_mac drops it); an offload super-frame
 *       other than a UDP tunnel over IPv4 carrying a TCPv4 super-frame with its checksum to
 *       complete at the inner TCP header; an outer packet marked CE carrying an inner IPv4
 *       packet that is not ECN-capable.
 *
 * ECN as Linux's vxlan_ecn_decapsulate: an outer CE marks an ECN-capable inner IPv4 packet
 * CE, an outer ECT(1) turns an inner ECT(0) into ECT(1) (the inner checksum updated).
 *
 * The outer UDP checksum is not verified (Linux's vxlan sockets accept zero and do not
 * check a present one on this path either when the NIC did); the inner frame is checked by
 * the stages it enters. A frame whose L4 checksum the sending kernel left to complete keeps
 * that state, its offsets moved with the frame start.
 *
 * A UDP-tunnel super-frame (a TAP opened with UDP-tunnel GSO hands over what a kernel's vxlan
 * device sent, or another node's whole encapsulated super-frame) is unwrapped the same way:
 * the inner frame goes on as the TCP super-frame it carries (GSO type without the tunnel
 * bit, header length and checksum start moved with the frame start), to leave a pod's TAP
 * whole or be cut where its egress needs it — as Linux's vxlan_rcv passes a GRO'd packet on.
 */
import { dropReasons } from '../core/drop-reason.ts';
import { Stage } from '../core/stage.ts';
import { macHiAt, macLoAt, rd16, rd32, rd32i } from '../wire/bytes.ts';
import { updateChecksum16 } from '../wire/checksum.ts';
import { VIRTIO_GSO_UDP_TUNNEL, VIRTIO_NET_HDR_F_NEEDS_CSUM, VirtioGso } from '../wire/virtio-net.ts';
import type { Context } from './context.ts';

const enum Drop {
  TOO_SHORT,
  BAD_UDP_LENGTH,
  MALFORMED,
  WRONG_VNI,
  UNKNOWN_VTEP,
  OTHER_HOST,
  LOOP,
  SUPER_FRAME,
  ECN,
}

/** UDP (8) + VXLAN (8) + inner Ethernet (14). */
const MIN_UDP_PAYLOAD = 30;

export class VxlanDecap extends Stage<'ip4' | 'l3'> {
  readonly name = 'vxlan-decap';
  readonly nextNames = ['ip4', 'l3'] as const;
  readonly dropReasons = dropReasons([
    ['vxlan.truncated', 'too short for vxlan and an inner ethernet header'],
    ['vxlan.bad-udp-length', 'udp length does not fit the datagram'],
    ['vxlan.malformed', 'malformed vxlan header (I flag clear, or reserved bits set)'],
    ['vxlan.wrong-vni', 'vni of no vxlan device at this address and port'],
    ['vxlan.unknown-vtep', 'source is not a known vtep of the device'],
    ['vxlan.other-host', 'inner frame for another host'],
    ['vxlan.loop', 'inner source mac is the device\'s own (loop)'],
    ['vxlan.super-frame', 'offload super-frame other than tcp over ipv4 in a udp tunnel'],
    ['vxlan.ecn-ce-not-ect', 'outer ce on an inner packet that is not ecn-capable'],
  ]);

  /** The last source found to be a known VTEP of interface `knownVtepIf`, at FDB version `knownVtepVersion`. */
  private knownVtep = 0;
  private knownVtepIf = -1;
  private knownVtepVersion = -1;

  constructor(private readonly ctx: Context) {
    super(ctx.pool);
  }

  protected process(slots: Int32Array, n: number): void {
    const { pool, vxlan, ifs } = this.ctx;
    const data = pool.data;
    const l3 = this.out.l3;
    const ip4 = this.out.ip4;
    for (let i = 0; i < n; i++) {
      const slot = slots[i];
      const ip = pool.l3[slot];
      const udp = pool.l4[slot];
      const payload = rd16(data, ip + 2) - (udp - ip);
      if (udp === 0 || payload < MIN_UDP_PAYLOAD) {
        this.drop(slot, Drop.TOO_SHORT);
        continue;
      }
      const udpLen = rd16(data, udp + 4);
      if (udpLen > payload || udpLen < MIN_UDP_PAYLOAD) {
        this.drop(slot, udpLen > payload || udpLen < 8 ? Drop.BAD_UDP_LENGTH : Drop.TOO_SHORT);
        continue;
      }
      const vx = udp + 8;
      // Word 1: only the I flag; word 2: the VNI and a zero reserved byte.
      if (rd32(data, vx) !== 0x08000000 || data[vx + 7] !== 0) {
        this.drop(slot, Drop.MALFORMED);
        continue;
      }
      const vni = (data[vx + 4] << 16) | (data[vx + 5] << 8) | data[vx + 6];
      const d = vxlan.deviceFor(rd32i(data, ip + 16), rd16(data, udp + 2), vni);
      if (d < 0) {
        this.drop(slot, Drop.WRONG_VNI);
        continue;
      }
      const ifIndex = vxlan.ifIndex[d];
      const src = rd32i(data, ip + 12);
      // Bursts come from one peer at a time: the last VTEP found is remembered until the FDB changes.
      if (src !== this.knownVtep || ifIndex !== this.knownVtepIf || vxlan.version !== this.knownVtepVersion) {
        if (!vxlan.isKnownVtep(ifIndex, src)) {
          this.drop(slot, Drop.UNKNOWN_VTEP);
          continue;
        }
        this.knownVtep = src;
        this.knownVtepIf = ifIndex;
        this.knownVtepVersion = vxlan.version;
      }
      const inner = vx + 8;
      if ((data[inner] & 1) === 0 && (macHiAt(data, inner) !== ifs.macHi[ifIndex] || macLoAt(data, inner) !== ifs.macLo[ifIndex])) {
        this.drop(slot, Drop.OTHER_HOST);
        continue;
      }
      if (macHiAt(data, inner + 6) === ifs.macHi[ifIndex] && macLoAt(data, inner + 6) === ifs.macLo[ifIndex]) {
        this.drop(slot, Drop.LOOP);
        continue;
      }
      const gso = pool.gsoType[slot];
      if (gso !== 0 && !this.isTunnelledTcp(slot, gso, inner)) {
        this.drop(slot, Drop.SUPER_FRAME);
        continue;
      }
      const outerEcn = data[ip + 1] & 3;
      if ((outerEcn & 1) !== 0 && udpLen >= MIN_UDP_PAYLOAD + 20 && data[inner + 12] === 0x08 && data[inner + 13] === 0x00 && !this.decapsulateEcn(inner + 14, outerEcn)) {
        this.drop(slot, Drop.ECN);
        continue;
      }
      const moved = inner - pool.start[slot];
      pool.start[slot] = inner;
      pool.len[slot] = udpLen - 16;
      if ((pool.vnetFlags[slot] & 1) !== 0) {
        if (pool.csumStart[slot] >= moved) pool.csumStart[slot] -= moved;
        else pool.vnetFlags[slot] = 0;
      }
      if (gso !== 0) {
        // The outer UDP checksum's offload state (UDP_TUNNEL_CSUM) goes with the outer headers.
        pool.vnetFlags[slot] &= VIRTIO_NET_HDR_F_NEEDS_CSUM;
        pool.gsoType[slot] = gso & ~VIRTIO_GSO_UDP_TUNNEL;
        pool.gsoHdrLen[slot] = pool.gsoHdrLen[slot] > moved ? pool.gsoHdrLen[slot] - moved : 0;
        pool.outerThOffset[slot] = 0;
        pool.innerNhOffset[slot] = 0;
      }
      pool.rxIf[slot] = ifIndex;
      pool.l3[slot] = 0;
      pool.l4[slot] = 0;
      pool.txIf[slot] = -1;
      pool.nextHop[slot] = 0;
      pool.icmpError[slot] = 0;
      pool.ct[slot] = -1;
      pool.ctDir[slot] = 0;
      pool.ctState[slot] = 0;
      if (data[inner + 12] === 0x08 && data[inner + 13] === 0x00) {
        pool.l3[slot] = inner + 14;
        this.to(ip4, slot);
      } else {
        this.to(l3, slot);
      }
    }
  }

  /**
   * A UDP tunnel over IPv4 carrying a TCPv4 super-frame (ECN bit allowed) whose checksum to
   * complete starts past the inner Ethernet and a minimal IPv4 header, at an inner frame
   * starting at `inner`: what virtio_net_hdr_tnl_to_skb accepts, and what decapsulates.
   */
  private isTunnelledTcp(slot: number, gso: number, inner: number): boolean {
    const pool = this.ctx.pool;
    return (
      (gso & VIRTIO_GSO_UDP_TUNNEL) === VirtioGso.UDP_TUNNEL_IPV4 &&
      (gso & ~(VIRTIO_GSO_UDP_TUNNEL | VirtioGso.ECN)) === VirtioGso.TCPV4 &&
      (pool.vnetFlags[slot] & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0 &&
      pool.start[slot] + pool.csumStart[slot] >= inner + 14 + 20
    );
  }

  /** INET_ECN_decapsulate for an inner IPv4 header at `ip`; false: drop (CE over not-ECT). */
  private decapsulateEcn(ip: number, outer: number): boolean {
    const data = this.ctx.pool.data;
    const tos = data[ip + 1];
    const inner = tos & 3;
    if (inner === 0) return outer !== 3;
    let next = tos;
    if (outer === 3) next = tos | 3;
    else if (inner === 2) next = (tos & 0xfc) | 1;
    if (next !== tos) {
      const c = updateChecksum16(rd16(data, ip + 10), (data[ip] << 8) | tos, (data[ip] << 8) | next);
      data[ip + 1] = next;
      data[ip + 10] = c >>> 8;
      data[ip + 11] = c;
    }
    return true;
  }
}
