/**
 * vxlan-encap and vxlan-decap in the graph: what a frame routed to flannel.1 looks like on
 * the underlay (outer headers byte by byte, the source port per flow, the VNI, the inner frame
 * with TTL−1 and the VTEP MACs), decapsulation to the right pod, every drop with its reason,
 * the overlay MTU with fragmentation needed, and the ICMP answers that cross the overlay.
 */
import { describe, expect, it } from 'vitest';
import * as F from '../helpers/frames.ts';
import { FLANNEL, NODE2, NODE3, POD2, UP, VXLAN_LAB, encapOf, vxlanFrame } from '../helpers/vxlan-lab.ts';
import { A, B, GW, Harness, arpFrame, ethOf, icmpOf, introduce, ip4Of, isIcmp, udpFrame } from './stage-harness.test.ts';
import { VXLAN_SPORT_MAX, VXLAN_SPORT_MIN } from '../../src/stages/vxlan-encap.ts';

function lab(): Harness {
  const h = new Harness(VXLAN_LAB);
  introduce(h, A);
  introduce(h, B);
  return h;
}

describe('vxlan-encap', () => {
  it('wraps a routed frame as Linux does: outer Ethernet/IPv4/UDP/VXLAN to the FDB entry of the inner destination MAC', () => {
    const h = lab();
    const sent = udpFrame({ from: A, toMac: GW.mac, dst: POD2, sport: 40001, dport: 53, dataLen: 100, id: 0x4242, ttl: 64 });
    h.rx('pa', sent);
    const [f] = h.take('up');
    expect(f).toBeDefined();
    expect(f.length).toBe(sent.length + 50);
    expect(ethOf(f)).toEqual({ dst: NODE2.mac, src: UP.mac, type: 0x0800 });
    const outer = ip4Of(f);
    expect(outer).toMatchObject({ version: 4, ihl: 20, tos: 0, total: sent.length + 36, df: false, mf: false, fragOffset: 0, ttl: 64, proto: 17, src: UP.ip, dst: NODE2.ip, checksumOk: true });
    const e = encapOf(f);
    expect(e.dport).toBe(8472);
    expect(e.sport).toBeGreaterThanOrEqual(VXLAN_SPORT_MIN);
    expect(e.sport).toBeLessThan(VXLAN_SPORT_MAX);
    expect([e.udpLen, e.udpChecksum]).toEqual([sent.length + 16, 0]);
    expect([...e.vxlan]).toEqual([0x08, 0, 0, 0, 0, 0, 1, 0]);
    // The inner frame: the VTEP MACs, TTL−1 with its checksum, every other byte as sent.
    expect(ethOf(e.inner)).toEqual({ dst: NODE2.vtepMac, src: FLANNEL.mac, type: 0x0800 });
    expect(ip4Of(e.inner)).toMatchObject({ ttl: 63, src: A.ip, dst: POD2, id: 0x4242, checksumOk: true });
    const expected = Buffer.from(sent);
    expected[22] = 63;
    expected.writeUInt16BE(0, 24);
    expected.writeUInt16BE(F.checksum(expected.subarray(14, 34)), 24);
    expect(e.inner.subarray(12).equals(expected.subarray(12))).toBe(true);
    expect(h.counters('vxlan-encap').packets).toBe(1);
  });

  it('frames the outer packet for the port at once while LOCAL_OUT and POSTROUTING are empty, and sends it through them when conntrack is on', () => {
    const h = lab();
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: POD2 }));
    const [direct] = h.take('up');
    // Only the inner packet passed output/postrouting hooks (postrouting once); the outer went straight out.
    expect([h.counters('output').packets, h.counters('ip4-output').packets, h.counters('postrouting').packets]).toEqual([0, 0, 1]);

    const t = new Harness(VXLAN_LAB + 'conntrack: {}\n');
    introduce(t, A);
    t.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: POD2 }));
    const [full] = t.take('up');
    expect([t.counters('output').packets, t.counters('ip4-output').packets, t.counters('postrouting').packets]).toEqual([1, 1, 2]);
    // Byte for byte the same frame either way (both routers' first identification), and
    // conntrack tracked the outer flow besides the inner one.
    expect(full.equals(direct)).toBe(true);
    expect(t.dp.ctx.conntrack!.count).toBe(2);
  });

  it('keeps the source port of a flow and spreads flows over ports', () => {
    const h = lab();
    const portOf = (sport: number, dst = POD2): number => {
      h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst, sport, dport: 80 }));
      return encapOf(h.take('up')[0]).sport;
    };
    const first = portOf(1000);
    expect(portOf(1000)).toBe(first);
    expect(portOf(1000)).toBe(first);
    const ports = new Set<number>();
    for (let p = 1000; p < 1032; p++) ports.add(portOf(p));
    ports.add(portOf(1000, '10.244.2.6'));
    // 33 flows over 28,231 ports: a good hash gives (nearly) every flow its own.
    expect(ports.size).toBeGreaterThan(28);
    for (const p of ports) expect(p >= VXLAN_SPORT_MIN && p < VXLAN_SPORT_MAX).toBe(true);
  });

  it('copies the inner ECN codepoint to the outer header, CE as ECT(0)', () => {
    const h = lab();
    for (const [inner, outer] of [[1, 1], [2, 2], [3, 2], [0, 0]]) {
      const f = udpFrame({ from: A, toMac: GW.mac, dst: POD2 });
      f[15] = 0xb8 | inner;
      f.writeUInt16BE(0, 24);
      f.writeUInt16BE(F.checksum(f.subarray(14, 34)), 24);
      h.rx('pa', f);
      expect(ip4Of(h.take('up')[0]).tos).toBe(outer);
    }
  });

  it('drops a frame whose inner destination MAC has no FDB entry, and counts it', () => {
    const h = lab();
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '10.244.9.7' }));
    expect(h.take('up')).toEqual([]);
    expect(h.drops('vxlan-encap')).toEqual({ 'vxlan.no-fdb-entry': 1 });
  });

  it('sends ICMP fragmentation needed with MTU 1450 for a DF packet over the overlay MTU, and forwards one that fits', () => {
    const h = lab();
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: POD2, df: true, dataLen: 1500 - 28 }));
    expect(h.take('up')).toEqual([]);
    const [err] = h.take('pa');
    expect(isIcmp(err, 3, 4)).toBe(true);
    expect(icmpOf(err).word2).toBe(1450);
    expect(ip4Of(err)).toMatchObject({ src: GW.ip, dst: A.ip });
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: POD2, df: true, dataLen: 1450 - 28 }));
    const [f] = h.take('up');
    // 1450 bytes of inner IPv4, its Ethernet header and 36 of outer IPv4/UDP/VXLAN: 1500.
    expect(ip4Of(f).total).toBe(1500);
    expect(f.length).toBe(1500 + 14);
  });

  it('fragments a packet over the overlay MTU without DF before encapsulating, each fragment a VXLAN frame', () => {
    const h = lab();
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: POD2, dataLen: 2000 }));
    const frags = h.take('up');
    expect(frags).toHaveLength(2);
    const inner = frags.map((f) => ip4Of(encapOf(f).inner));
    expect(inner.map((i) => [i.mf, i.fragOffset])).toEqual([[true, 0], [false, 1424]]);
    expect(frags.every((f) => f.length <= 1514)).toBe(true);
  });
});

describe('vxlan-decap', () => {
  it('delivers the inner packet to the right pod, as received on flannel.1 (TTL−1, the pod MAC)', () => {
    const h = lab();
    const inner = F.ipv4({ src: POD2, dst: B.ip, proto: 17, ttl: 63, id: 7 }, F.udp(POD2, B.ip, 5000, 6000, F.bytes(64, 5)));
    h.rx('up', vxlanFrame(inner));
    expect(h.take('pa')).toEqual([]);
    const [f] = h.take('pb');
    expect(ethOf(f)).toEqual({ dst: B.mac, src: GW.mac, type: 0x0800 });
    expect(ip4Of(f)).toMatchObject({ src: POD2, dst: B.ip, ttl: 62, checksumOk: true, total: inner.length });
    expect(f.subarray(34).equals(Buffer.from(inner.slice(20)))).toBe(true);
    expect(h.counters('vxlan-decap').packets).toBe(1);
  });

  it('skips the empty input hook and ip4-local on the way in, and passes them when conntrack is on', () => {
    const inner = F.ipv4({ src: POD2, dst: B.ip, proto: 17, ttl: 63 }, F.udp(POD2, B.ip, 5000, 6000, F.bytes(64, 5)));
    const direct = lab();
    direct.rx('up', vxlanFrame(inner));
    const [a] = direct.take('pb');
    expect([direct.counters('input').packets, direct.counters('ip4-local').packets, direct.counters('vxlan-decap').packets]).toEqual([0, 0, 1]);
    const tracked = new Harness(VXLAN_LAB + 'conntrack: {}\n');
    introduce(tracked, A);
    introduce(tracked, B);
    tracked.rx('up', vxlanFrame(inner));
    const [b] = tracked.take('pb');
    expect([tracked.counters('input').packets, tracked.counters('ip4-local').packets, tracked.counters('vxlan-decap').packets]).toEqual([1, 1, 1]);
    expect(b.equals(a)).toBe(true);
  });

  it('answers a ping to a pod across the overlay: request decapsulated in, reply encapsulated out', () => {
    const h = lab();
    const req = F.ipv4({ src: POD2, dst: FLANNEL.ip, proto: 1, ttl: 64 }, F.icmpEcho(8, 9, 1, F.bytes(32, 1)));
    h.rx('up', vxlanFrame(req));
    const [f] = h.take('up');
    const e = encapOf(f);
    expect(ethOf(e.inner)).toEqual({ dst: NODE2.vtepMac, src: FLANNEL.mac, type: 0x0800 });
    expect(ip4Of(e.inner)).toMatchObject({ src: FLANNEL.ip, dst: POD2, proto: 1, checksumOk: true });
    expect(icmpOf(e.inner)).toMatchObject({ type: 0, code: 0, checksumOk: true });
  });

  it('accepts broadcast inner frames: ARP for flannel.1 is answered over the overlay', () => {
    const h = lab();
    const arp = F.arp(1, NODE2.vtepMac, NODE2.overlay, '00:00:00:00:00:00', FLANNEL.ip);
    const inner = [...F.mac('ff:ff:ff:ff:ff:ff'), ...F.mac(NODE2.vtepMac), 0x08, 0x06, ...arp];
    const udp = F.udp(NODE2.ip, UP.ip, 45678, 8472, [0x08, 0, 0, 0, 0, 0, 1, 0, ...inner]);
    udp[6] = udp[7] = 0;
    h.rx('up', F.ethernet(UP.mac, NODE2.mac, 0x0800, F.ipv4({ src: NODE2.ip, dst: UP.ip, proto: 17 }, udp)));
    const [f] = h.take('up');
    const e = encapOf(f);
    expect(e.inner.readUInt16BE(12)).toBe(0x0806);
    expect(e.inner.readUInt16BE(20)).toBe(2);
  });

  it('drops and counts, each with its reason: wrong VNI, unknown VTEP, malformed header, short, other host, loop', () => {
    const h = lab();
    const inner = F.ipv4({ src: POD2, dst: A.ip, proto: 17 }, F.udp(POD2, A.ip, 1, 2, [1, 2, 3, 4]));
    h.rx('up', vxlanFrame(inner, { vni: 2 }));
    h.rx('up', vxlanFrame(inner, { from: NODE3 }));
    h.rx('up', vxlanFrame(inner, { header: [0x00, 0, 0, 0, 0, 0, 1, 0] }));
    h.rx('up', vxlanFrame(inner, { header: [0x0c, 0, 0, 0, 0, 0, 1, 0] }));
    h.rx('up', vxlanFrame(inner, { header: [0x08, 0, 0, 0, 0, 0, 1, 1] }));
    h.rx('up', vxlanFrame(inner, { header: [0x08, 0, 0x80, 0, 0, 0, 1, 0] }));
    h.rx('up', vxlanFrame(inner, { innerDstMac: '0e:00:00:00:00:77' }));
    h.rx('up', vxlanFrame(inner, { innerSrcMac: FLANNEL.mac }));
    const short = F.udp(NODE2.ip, UP.ip, 45678, 8472, [0x08, 0, 0, 0, 0, 0, 1, 0, 1, 2, 3]);
    h.rx('up', F.ethernet(UP.mac, NODE2.mac, 0x0800, F.ipv4({ src: NODE2.ip, dst: UP.ip, proto: 17 }, short)));
    expect(h.take('pa')).toEqual([]);
    expect(h.take('up')).toEqual([]);
    expect(h.drops('vxlan-decap')).toEqual({
      'vxlan.wrong-vni': 1,
      'vxlan.unknown-vtep': 1,
      'vxlan.malformed': 4,
      'vxlan.other-host': 1,
      'vxlan.loop': 1,
      'vxlan.truncated': 1,
    });
  });

  it('applies the outer ECN to the inner packet as Linux does: CE marks, ECT(1) over ECT(0), CE over not-ECT dropped', () => {
    const h = lab();
    const cases: [number, number, number | null][] = [
      // outer, inner → inner delivered (null: dropped)
      [3, 2, 3],
      [3, 1, 3],
      [3, 0, null],
      [1, 2, 1],
      [1, 0, 0],
      [2, 1, 1],
      [0, 2, 2],
    ];
    for (const [outer, inner, want] of cases) {
      const packet = F.ipv4({ src: POD2, dst: A.ip, proto: 17, ttl: 63 }, F.udp(POD2, A.ip, 1, 2, [1, 2, 3, 4]));
      packet[1] = inner;
      packet[10] = packet[11] = 0;
      const c = F.checksum(packet.slice(0, 20));
      packet[10] = c >> 8;
      packet[11] = c & 255;
      const f = vxlanFrame(packet);
      f[15] = outer;
      f.writeUInt16BE(0, 24);
      f.writeUInt16BE(F.checksum(f.subarray(14, 34)), 24);
      h.rx('up', f);
      const got = h.take('pa');
      if (want === null) {
        expect(got).toEqual([]);
      } else {
        expect(got).toHaveLength(1);
        expect(ip4Of(got[0])).toMatchObject({ tos: want, checksumOk: true });
      }
    }
    expect(h.drops('vxlan-decap')).toEqual({ 'vxlan.ecn-ce-not-ect': 1 });
  });

  it('treats UDP to another port as UDP to the router: port unreachable', () => {
    const h = lab();
    const inner = F.ipv4({ src: POD2, dst: A.ip, proto: 17 }, F.udp(POD2, A.ip, 1, 2, [1, 2, 3, 4]));
    h.rx('up', vxlanFrame(inner, { dport: 4789 }));
    const [err] = h.take('up');
    expect(isIcmp(err, 3, 3)).toBe(true);
    expect(ip4Of(err)).toMatchObject({ src: UP.ip, dst: NODE2.ip });
    expect(h.counters('vxlan-decap').packets).toBe(0);
  });

  it('learns nothing from ARP on the underlay for decapsulated traffic and leaks no slot', () => {
    const h = lab();
    h.rx('up', arpFrame({ ethDst: UP.mac, ethSrc: NODE2.mac, op: 2, sha: NODE2.mac, spa: NODE2.ip, tha: UP.mac, tpa: UP.ip }));
    h.clear();
    const inner = F.ipv4({ src: POD2, dst: A.ip, proto: 17 }, F.udp(POD2, A.ip, 1, 2, [1, 2, 3, 4]));
    for (let i = 0; i < 10; i++) h.rx('up', vxlanFrame(inner));
    expect(h.take('pa')).toHaveLength(10);
  });
});

describe('tcp-segment before vxlan-encap (offload super-frames)', () => {
  it('cuts a 64 KiB super-frame into MSS segments, each encapsulated with correct inner IPv4 and TCP', async () => {
    const { parseConfig } = await import('../../src/config/load.ts');
    const { VirtualClock } = await import('../../src/core/clock.ts');
    const { OFFLOAD_SLOT_SIZE } = await import('../../src/core/frame-pool.ts');
    const { Dataplane } = await import('../../src/dataplane/dataplane.ts');
    const clock = new VirtualClock();
    clock.set(1_700_000_000_000_000);
    const dp = new Dataplane(parseConfig(VXLAN_LAB, 'test'), { clock, poolSize: 512, slotSize: OFFLOAD_SLOT_SIZE });
    const out: Buffer[] = [];
    const meta: number[][] = [];
    dp.setDriver(dp.portIndex('up'), {
      transmit: (pool, slots, n) => {
        for (let i = 0; i < n; i++) {
          out.push(Buffer.from(pool.view(slots[i])));
          meta.push([pool.vnetFlags[slots[i]], pool.gsoType[slots[i]]]);
        }
        return n;
      },
    });
    dp.receive(dp.portIndex('pa'), arpFrame({ ethDst: 'ff:ff:ff:ff:ff:ff', ethSrc: A.mac, op: 1, sha: A.mac, spa: A.ip, tpa: GW.ip }));
    dp.run();
    const free = dp.pool.available;
    const mss = 1398;
    const payload = 65_000;
    const data = F.bytes(payload, 11);
    const seq = 0xfffff000; // wraps within the super-frame
    const tcp = F.tcp(A.ip, POD2, 40000, 5201, F.TCP_ACK | F.TCP_PSH | F.TCP_FIN | 0x80, seq, 77, data);
    // As a TAP hands it over: checksum field holding the pseudo-header sum only (NEEDS_CSUM).
    tcp[16] = tcp[17] = 0;
    const frame = F.ethernet(GW.mac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: POD2, proto: 6, df: true, id: 0xfff0 }, tcp));
    const slot = dp.pool.fill(frame, dp.portIndex('pa'));
    dp.pool.vnetFlags[slot] = 1;
    dp.pool.gsoType[slot] = 1;
    dp.pool.gsoSize[slot] = mss;
    dp.pool.gsoHdrLen[slot] = 54;
    dp.pool.csumStart[slot] = 34;
    dp.pool.csumOffset[slot] = 16;
    dp.receiveSlot(dp.portIndex('pa'), slot);
    dp.run();
    const n = Math.ceil(payload / mss);
    expect(out).toHaveLength(n);
    let got = Buffer.alloc(0);
    out.forEach((f, k) => {
      expect(meta[k]).toEqual([0, 0]);
      expect(f.length).toBeLessThanOrEqual(1514);
      const inner = encapOf(f).inner;
      const ip = ip4Of(inner);
      const size = Math.min(mss, payload - k * mss);
      expect(ip).toMatchObject({ total: 40 + size, id: (0xfff0 + k) & 0xffff, ttl: 63, df: true, checksumOk: true });
      const t = inner.subarray(34, 14 + ip.total);
      expect(t.readUInt32BE(4)).toBe((seq + k * mss) >>> 0);
      const flags = t[13];
      expect(flags & 0x80).toBe(k === 0 ? 0x80 : 0);
      expect(flags & 0x09).toBe(k === n - 1 ? 0x09 : 0);
      expect(flags & 0x10).toBe(0x10);
      const pseudo = [...F.ip(A.ip), ...F.ip(POD2), 0, 6, (t.length >> 8) & 255, t.length & 255];
      expect(F.checksum([...pseudo, ...t])).toBe(0);
      got = Buffer.concat([got, t.subarray(20)]);
    });
    expect(got.equals(Buffer.from(data))).toBe(true);
    expect(new Set(out.map((f) => encapOf(f).sport)).size).toBe(1);
    expect(dp.pool.available).toBe(free);
  });

  it('answers a super-frame whose segments exceed the overlay MTU with DF by fragmentation needed (MTU 1450)', () => {
    const h = new Harness(VXLAN_LAB);
    introduce(h, A);
    const slot = h.dp.pool.fill(F.ethernet(GW.mac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: POD2, proto: 6, df: true }, F.tcp(A.ip, POD2, 1, 2, 0x10, 1, 1, F.bytes(2000, 1)))), h.port('pa'));
    h.dp.pool.gsoType[slot] = 1;
    h.dp.pool.gsoSize[slot] = 1448;
    h.dp.receiveSlot(h.port('pa'), slot);
    h.dp.run();
    expect(h.take('up')).toEqual([]);
    const [err] = h.take('pa');
    expect(isIcmp(err, 3, 4)).toBe(true);
    expect(icmpOf(err).word2).toBe(1450);
  });
});
