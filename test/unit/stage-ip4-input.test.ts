/**
 * ip4-input (with l3-input in front): header validation, each failure dropped and counted
 * under its own reason; Ethernet padding trimmed; martian sources and multicast destinations
 * dropped; no route answered with net unreachable.
 */
import { describe, expect, it } from 'vitest';
import * as F from '../helpers/frames.ts';
import { A, BCAST, GW, Harness, UP, UPSTREAM, ethOf, icmpOf, introduce, ip4Of, isIcmp, udpFrame } from './stage-harness.test.ts';

/** Edits the IPv4 header of an Ethernet frame and recomputes the header checksum. */
function edit(frame: Buffer, change: (f: Buffer) => void, ihl = 20): Buffer {
  const f = Buffer.from(frame);
  change(f);
  f.writeUInt16BE(0, 24);
  f.writeUInt16BE(F.checksum(f.subarray(14, 14 + Math.min(ihl, f.length - 14))), 24);
  return f;
}

function everything(h: Harness): Buffer[] {
  return ['pa', 'pb', 'pc', 'up', 'slow'].flatMap((p) => h.take(p));
}

describe('ip4-input: header checks', () => {
  const good = (): Buffer => udpFrame({ from: A, toMac: GW.mac, dst: '203.0.113.5', dataLen: 0 });

  const cases: [string, () => Buffer, string][] = [
    ['fewer than 20 bytes of header', () => good().subarray(0, 14 + 19), 'ip4.truncated'],
    ['version 6 in an IPv4 EtherType', () => edit(good(), (f) => (f[14] = 0x65)), 'ip4.bad-version'],
    ['IHL 4 (16 bytes)', () => edit(good(), (f) => (f[14] = 0x44)), 'ip4.bad-header-length'],
    ['IHL 15 beyond the end of the frame', () => edit(good(), (f) => (f[14] = 0x4f), 28), 'ip4.bad-header-length'],
    ['total length below the header length', () => edit(good(), (f) => f.writeUInt16BE(19, 16)), 'ip4.bad-total-length'],
    ['total length beyond the frame', () => edit(good(), (f) => f.writeUInt16BE(29, 16)), 'ip4.bad-total-length'],
    ['a bad header checksum', () => udpFrame({ from: A, toMac: GW.mac, dst: '203.0.113.5', badChecksum: true }), 'ip4.bad-checksum'],
  ];

  for (const [what, frame, reason] of cases) {
    it(`drops ${what}, counted as '${reason}', and answers nothing`, () => {
      const h = new Harness();
      introduce(h, A);
      h.rx('pa', frame());
      expect(everything(h)).toEqual([]);
      expect(h.drops('ip4-input')).toEqual({ [reason]: 1 });
      expect(h.counters('icmp-error').packets).toBe(0);
      // The same dataplane still forwards a good packet.
      h.rx('pa', good());
      expect(h.take('up')).toHaveLength(1);
    });
  }

  it('forwards a header with options (IHL 6) and keeps them', () => {
    const h = new Harness();
    introduce(h, A);
    const plain = F.ipv4({ src: A.ip, dst: '203.0.113.5', proto: 17 }, F.bytes(12));
    const hdr = [0x46, ...plain.slice(1, 20), 1, 1, 1, 0];
    hdr[3] = 24 + 12;
    hdr[10] = 0;
    hdr[11] = 0;
    const c = F.checksum(hdr);
    hdr[10] = c >> 8;
    hdr[11] = c & 255;
    h.rx('pa', F.ethernet(GW.mac, A.mac, 0x0800, [...hdr, ...F.bytes(12)]));
    const [out] = h.take('up');
    expect(ip4Of(out)).toMatchObject({ ihl: 24, total: 36, ttl: 63, checksumOk: true });
    expect([...out.subarray(34, 38)]).toEqual([1, 1, 1, 0]);
  });
});

describe('ip4-input: what is not routed', () => {
  it('trims Ethernet padding: a 60-byte frame carrying a 28-byte datagram leaves as 42 bytes', () => {
    const h = new Harness();
    introduce(h, A);
    const f = Buffer.concat([udpFrame({ from: A, toMac: GW.mac, dst: '203.0.113.5', dataLen: 0 }), Buffer.alloc(18, 0x5a)]);
    expect(f.length).toBe(60);
    h.rx('pa', f);
    const [out] = h.take('up');
    expect(out.length).toBe(42);
    expect(ip4Of(out)).toMatchObject({ total: 28, ttl: 63, checksumOk: true });
    expect(out.subarray(14 + 12)).toEqual(f.subarray(14 + 12, 42));
  });

  for (const src of ['0.1.2.3', '127.0.0.1', '224.0.0.5', '239.255.255.250', '255.255.255.255']) {
    it(`drops a packet from the martian source ${src}, answering nothing`, () => {
      const h = new Harness();
      h.rx('pa', udpFrame({ from: { mac: A.mac, ip: src }, toMac: GW.mac, dst: '203.0.113.5' }));
      expect(everything(h)).toEqual([]);
      expect(h.drops('ip4-input')).toEqual({ 'ip4.martian-source': 1 });
    });
  }

  it('drops a multicast destination, whether it came in a unicast or a multicast frame', () => {
    const h = new Harness();
    introduce(h, A);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '239.1.2.3' }));
    h.rx('pa', udpFrame({ from: A, toMac: '01:00:5e:01:02:03', dst: '239.1.2.3' }));
    expect(h.take('up')).toEqual([]);
    expect(h.take('pa')).toEqual([]);
    expect(h.drops('ip4-input')).toEqual({ 'ip4.multicast': 2 });
    // The multicast frame is still bridged to the other pods.
    expect(h.take('pb')).toHaveLength(1);
  });

  it('does not route a unicast packet that arrived in a link-layer broadcast frame', () => {
    const h = new Harness();
    introduce(h, A);
    h.rx('pa', udpFrame({ from: A, toMac: BCAST, dst: '203.0.113.5' }));
    expect(h.take('up')).toEqual([]);
    expect(h.take('pa')).toEqual([]);
    expect(h.drops('ip4-lookup')).toEqual({ 'ip4.l2-broadcast-unicast': 1 });
  });

  it('drops IPv6 at an L3 port as not routed', () => {
    const h = new Harness();
    h.rx('up', F.ethernet(UP.mac, UPSTREAM.mac, 0x86dd, [0x60, 0, 0, 0, 0, 0, 59, 64, ...new Array(32).fill(0)]));
    expect(h.drops('l3-input')).toEqual({ 'ip6.not-routed': 1 });
    expect(everything(h)).toEqual([]);
  });

  it('drops a unicast frame for another MAC on an L3 port', () => {
    const h = new Harness();
    h.rx('up', udpFrame({ from: UPSTREAM, toMac: '02:00:00:00:50:99', dst: A.ip }));
    expect(h.drops('ethernet-input')).toEqual({ 'eth.other-host': 1 });
    expect(everything(h)).toEqual([]);
  });

  it('drops a VLAN-tagged frame at a router interface', () => {
    const h = new Harness();
    const inner = udpFrame({ from: A, toMac: GW.mac, dst: '203.0.113.5' });
    h.rx('pa', Buffer.concat([inner.subarray(0, 12), Buffer.from([0x81, 0, 0, 5]), inner.subarray(12)]));
    expect(h.drops('l3-input')).toEqual({ 'l3.vlan-tagged': 1 });
  });

  it('answers a destination without a route with ICMP net unreachable (3/0)', () => {
    const yaml = '\nnode: { name: n }\nbridges:\n  - { name: cni0, address: 10.244.1.1/24, mac: 0a:58:0a:f4:01:01 }\nports:\n  - { name: pa, bridge: cni0 }\n';
    const h = new Harness(yaml);
    introduce(h, A);
    const sent = udpFrame({ from: A, toMac: GW.mac, dst: '198.18.0.1' });
    h.rx('pa', sent);
    const [err] = h.take('pa');
    expect(isIcmp(err, 3, 0)).toBe(true);
    expect(ethOf(err)).toEqual({ dst: A.mac, src: GW.mac, type: 0x0800 });
    expect(ip4Of(err)).toMatchObject({ src: GW.ip, dst: A.ip, checksumOk: true });
    const m = icmpOf(err);
    expect(m.checksumOk).toBe(true);
    // Not yet forwarded: the quote has the TTL as it arrived.
    expect(m.body).toEqual(sent.subarray(14));
  });
});
