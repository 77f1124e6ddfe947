/**
 * UDP-tunnel GSO across flannel.1: with ports that take UDP-tunnel super-frames, a pod's TCP
 * super-frame leaves the underlay port encapsulated whole (outer headers for the whole, GSO
 * type TCPV4 | UDP_TUNNEL_IPV4, the inner checksum left partial, the outer UDP and inner IPv4
 * offsets for the virtio-net header), and a tunnel super-frame arriving on the underlay is
 * unwrapped into the TCP super-frame it carries, to leave the pod's TAP whole. Without such
 * ports the super-frame is cut into segments first (stage-vxlan.test.ts). What the kernel
 * makes of it (segments with every checksum right) is checked against the kernel itself by
 * the end-to-end tests of two nodes (test/e2e/vxlan-*.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { VirtualClock } from '../../src/core/clock.ts';
import { OFFLOAD_SLOT_SIZE } from '../../src/core/frame-pool.ts';
import { Dataplane } from '../../src/dataplane/dataplane.ts';
import * as F from '../helpers/frames.ts';
import { FLANNEL, NODE2, POD2, UP, VXLAN_LAB, encapOf, vxlanFrame } from '../helpers/vxlan-lab.ts';
import { A, GW, arpFrame, ethOf, ip4Of } from './stage-harness.test.ts';

/** What a TAP's virtio-net header said, or would say, of a frame. */
interface Offload {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
  outerTh: number;
  innerNh: number;
}

interface Sent {
  frame: Buffer;
  offload: Offload;
}

function node(tunnelGso: boolean) {
  const clock = new VirtualClock();
  clock.set(1_700_000_000_000_000);
  const dp = new Dataplane(parseConfig(VXLAN_LAB, 'test'), { clock, poolSize: 512, slotSize: OFFLOAD_SLOT_SIZE });
  dp.setUdpTunnelGso(tunnelGso);
  const out = new Map<string, Sent[]>();
  for (const name of ['pa', 'pb', 'up']) {
    const list: Sent[] = [];
    out.set(name, list);
    dp.setDriver(dp.portIndex(name), {
      transmit: (pool, slots, n) => {
        for (let i = 0; i < n; i++) {
          const s = slots[i];
          list.push({
            frame: Buffer.from(pool.view(s)),
            offload: {
              flags: pool.vnetFlags[s],
              gsoType: pool.gsoType[s],
              hdrLen: pool.gsoHdrLen[s],
              gsoSize: pool.gsoSize[s],
              csumStart: pool.csumStart[s],
              csumOffset: pool.csumOffset[s],
              outerTh: pool.outerThOffset[s],
              innerNh: pool.innerNhOffset[s],
            },
          });
        }
        return n;
      },
    });
  }
  // Pod A announces itself, so the router knows its MAC.
  dp.receive(dp.portIndex('pa'), arpFrame({ ethDst: 'ff:ff:ff:ff:ff:ff', ethSrc: A.mac, op: 1, sha: A.mac, spa: A.ip, tpa: GW.ip }));
  dp.run();
  out.get('pa')!.length = 0;
  const rx = (port: string, frame: Buffer, o: Partial<Offload>): void => {
    const slot = dp.pool.fill(frame, dp.portIndex(port));
    expect(slot).toBeGreaterThanOrEqual(0);
    dp.pool.vnetFlags[slot] = o.flags ?? 0;
    dp.pool.gsoType[slot] = o.gsoType ?? 0;
    dp.pool.gsoHdrLen[slot] = o.hdrLen ?? 0;
    dp.pool.gsoSize[slot] = o.gsoSize ?? 0;
    dp.pool.csumStart[slot] = o.csumStart ?? 0;
    dp.pool.csumOffset[slot] = o.csumOffset ?? 0;
    dp.pool.outerThOffset[slot] = o.outerTh ?? 0;
    dp.pool.innerNhOffset[slot] = o.innerNh ?? 0;
    dp.receiveSlot(dp.portIndex(port), slot);
    dp.run();
  };
  const take = (port: string): Sent[] => out.get(port)!.splice(0);
  return { dp, rx, take };
}

/** The uninverted sum of the TCP pseudo header over `tcpLen` bytes: what a partial checksum holds. */
function pseudoSum(src: string, dst: string, tcpLen: number): number {
  return ~F.checksum([...F.ip(src), ...F.ip(dst), 0, 6, (tcpLen >> 8) & 255, tcpLen & 255]) & 0xffff;
}

/**
 * A TCPv4 super-frame from `src` to `dst` with `payload` bytes, as a TAP hands it over: the
 * checksum field holding the pseudo-header sum only (NEEDS_CSUM at the TCP header).
 */
function tcpSuperFrame(o: { ethDst: string; ethSrc: string; src: string; dst: string; payload: number; ttl?: number }): Buffer {
  const tcp = F.tcp(o.src, o.dst, 40000, 5201, F.TCP_ACK | F.TCP_PSH, 1000, 77, F.bytes(o.payload, 5));
  const sum = pseudoSum(o.src, o.dst, tcp.length);
  tcp[16] = sum >> 8;
  tcp[17] = sum & 255;
  return F.ethernet(o.ethDst, o.ethSrc, 0x0800, F.ipv4({ src: o.src, dst: o.dst, proto: 6, df: true, id: 0x100, ttl: o.ttl ?? 64 }, tcp));
}

const MSS = 1398;
const TCP_OFFLOAD = { flags: 1, gsoType: 1, hdrLen: 54, gsoSize: MSS, csumStart: 34, csumOffset: 16 };

describe('UDP-tunnel GSO: a TCP super-frame routed to flannel.1', () => {
  it('leaves the underlay port encapsulated whole, with the tunnel offload state for the virtio-net header', () => {
    const { rx, take } = node(true);
    const sent = tcpSuperFrame({ ethDst: GW.mac, ethSrc: A.mac, src: A.ip, dst: POD2, payload: 60_000 });
    rx('pa', sent, TCP_OFFLOAD);
    const out = take('up');
    expect(out).toHaveLength(1);
    const [{ frame: f, offload }] = out;
    expect(f.length).toBe(sent.length + 50);
    // TCPV4 | UDP_TUNNEL_IPV4; the inner checksum still to complete at the inner TCP header
    // (50 bytes further on), the outer UDP header at 34 and the inner IPv4 header at 64.
    expect(offload).toEqual({ flags: 1, gsoType: 0x21, hdrLen: 104, gsoSize: MSS, csumStart: 84, csumOffset: 16, outerTh: 34, innerNh: 64 });
    expect(ethOf(f)).toEqual({ dst: NODE2.mac, src: UP.mac, type: 0x0800 });
    // The outer headers describe the whole: the receiving kernel rewrites them per segment.
    expect(ip4Of(f)).toMatchObject({ total: sent.length + 36, df: false, ttl: 64, proto: 17, src: UP.ip, dst: NODE2.ip, checksumOk: true });
    const e = encapOf(f);
    expect([e.dport, e.udpLen, e.udpChecksum, e.vni]).toEqual([8472, sent.length + 16, 0, 1]);
    // The inner frame: the VTEP MACs, TTL−1, and a TCP checksum that is still the pseudo-header
    // sum over the whole TCP length (the kernel adjusts it per segment).
    expect(ethOf(e.inner)).toEqual({ dst: NODE2.vtepMac, src: FLANNEL.mac, type: 0x0800 });
    const inner = ip4Of(e.inner);
    expect(inner).toMatchObject({ ttl: 63, src: A.ip, dst: POD2, total: sent.length - 14, checksumOk: true });
    expect(e.inner.readUInt16BE(34 + 16)).toBe(pseudoSum(A.ip, POD2, inner.total - 20));
    expect(e.inner.subarray(54).equals(sent.subarray(54))).toBe(true);
  });

  it('moves the outer identification on by the segments each super-frame becomes', () => {
    const { rx, take } = node(true);
    const ids: number[] = [];
    for (const payload of [60_000, 1000, 3 * MSS]) {
      rx('pa', tcpSuperFrame({ ethDst: GW.mac, ethSrc: A.mac, src: A.ip, dst: POD2, payload }), TCP_OFFLOAD);
      ids.push(ip4Of(take('up')[0].frame).id);
    }
    expect([ids[1] - ids[0], ids[2] - ids[1]]).toEqual([Math.ceil(60_000 / MSS), 1]);
  });

  it('is cut into segments in software when the ports do not take tunnel super-frames', () => {
    const { rx, take } = node(false);
    rx('pa', tcpSuperFrame({ ethDst: GW.mac, ethSrc: A.mac, src: A.ip, dst: POD2, payload: 10 * MSS }), TCP_OFFLOAD);
    const out = take('up');
    expect(out).toHaveLength(10);
    for (const { offload } of out) expect([offload.gsoType, offload.flags, offload.outerTh, offload.innerNh]).toEqual([0, 0, 0, 0]);
  });

  it('is cut into segments when it has no checksum to complete (the kernel refuses such a tunnel super-frame)', () => {
    const { rx, take } = node(true);
    rx('pa', tcpSuperFrame({ ethDst: GW.mac, ethSrc: A.mac, src: A.ip, dst: POD2, payload: 4 * MSS }), { ...TCP_OFFLOAD, flags: 0 });
    expect(take('up').map((s) => s.offload.gsoType)).toEqual([0, 0, 0, 0]);
  });
});

describe('UDP-tunnel GSO: a tunnel super-frame arriving on the underlay', () => {
  /** What node 2's kernel sends: pod 10.244.2.5's TCP super-frame to pod A, in VXLAN. */
  function tunnelled(payload: number): Buffer {
    const inner = tcpSuperFrame({ ethDst: FLANNEL.mac, ethSrc: NODE2.vtepMac, src: POD2, dst: A.ip, payload });
    return vxlanFrame([...inner.subarray(14)]);
  }
  const TUNNEL_OFFLOAD = { flags: 1, gsoType: 0x21, hdrLen: 104, gsoSize: MSS, csumStart: 84, csumOffset: 16, outerTh: 34, innerNh: 64 };

  it('is unwrapped into the TCP super-frame it carries, which leaves the pod port whole', () => {
    const { rx, take } = node(true);
    const f = tunnelled(50_000);
    rx('up', f, TUNNEL_OFFLOAD);
    const out = take('pa');
    expect(out).toHaveLength(1);
    const [{ frame, offload }] = out;
    expect(offload).toEqual({ flags: 1, gsoType: 1, hdrLen: 54, gsoSize: MSS, csumStart: 34, csumOffset: 16, outerTh: 0, innerNh: 0 });
    expect(frame.length).toBe(f.length - 50);
    expect(ethOf(frame)).toEqual({ dst: A.mac, src: GW.mac, type: 0x0800 });
    expect(ip4Of(frame)).toMatchObject({ ttl: 63, src: POD2, dst: A.ip, checksumOk: true });
    // The partial checksum passes untouched: the pod's kernel completes it per segment.
    expect(frame.subarray(34).equals(f.subarray(84))).toBe(true);
  });

  it('leaves the outer checksum state behind: a kernel vxlan device checksums its outer UDP (UDP_TUNNEL_CSUM)', () => {
    const { rx, take } = node(true);
    rx('up', tunnelled(20_000), { ...TUNNEL_OFFLOAD, flags: 1 | 8 });
    const [{ offload }] = take('pa');
    expect([offload.flags, offload.gsoType, offload.csumStart]).toEqual([1, 1, 34]);
  });

  it('drops and counts other tunnel super-frames: IPv6 outer, inner UDP, no checksum to complete', () => {
    const { dp, rx, take } = node(true);
    rx('up', tunnelled(5000), { ...TUNNEL_OFFLOAD, gsoType: 0x41 });
    rx('up', tunnelled(5000), { ...TUNNEL_OFFLOAD, gsoType: 0x25 });
    rx('up', tunnelled(5000), { ...TUNNEL_OFFLOAD, flags: 0 });
    rx('up', tunnelled(5000), { ...TUNNEL_OFFLOAD, csumStart: 60 });
    expect(take('pa')).toEqual([]);
    const decap = dp.stages.vxlanDecap;
    expect(decap.counters().drops).toEqual({ 'vxlan.super-frame': 4 });
  });
});
