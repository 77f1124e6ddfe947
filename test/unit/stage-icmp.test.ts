/**
 * icmp-error and ip4-local: when the router answers with an ICMP error and when it must not
 * (RFC 1122 §3.2.2, RFC 1812 §4.3.2.7, Linux's icmp_send), the rate limit, the source address
 * the error takes, the 576-byte bound of the quote; echo replies for each router address and
 * unreachable errors for UDP and unknown protocols sent to the router.
 */
import { describe, expect, it } from 'vitest';
import * as F from '../helpers/frames.ts';
import {
  A,
  B,
  BCAST,
  GW,
  Harness,
  LAB,
  MS,
  SEC,
  SLOW,
  SLOW_GW,
  UP,
  UPSTREAM2,
  ethOf,
  icmpOf,
  introduce,
  ip4Of,
  isIcmp,
  pingFrame,
  udpFrame,
} from './stage-harness.test.ts';

/** A host beyond the 203.0.113.0/24 route (via 192.168.50.2 on up). */
const FAR = { mac: UPSTREAM2.mac, ip: '203.0.113.5' };

function icmpErrorFrame(from: { mac: string; ip: string }, toMac: string, dst: string, ttl: number, type: number, code: number): Buffer {
  const quoted = F.ipv4({ src: dst, dst: from.ip, proto: 17 }, F.udp(dst, from.ip, 53, 40000, F.bytes(8)));
  const m = [type, code, 0, 0, 0, 0, 0, 0, ...quoted.slice(0, 28)];
  const c = F.checksum(m);
  m[2] = c >> 8;
  m[3] = c & 255;
  return F.ethernet(toMac, from.mac, 0x0800, F.ipv4({ src: from.ip, dst, proto: 1, ttl }, m));
}

function allOut(h: Harness): Buffer[] {
  return ['pa', 'pb', 'pc', 'up', 'slow'].flatMap((p) => h.take(p));
}

describe('icmp-error: when not to answer', () => {
  it('sends time exceeded for an expiring echo request, but nothing about an expiring ICMP error', () => {
    const h = new Harness();
    introduce(h, A);
    h.rx('pa', pingFrame({ from: A, toMac: GW.mac, dst: FAR.ip, ttl: 1 }));
    expect(h.take('pa').filter((f) => isIcmp(f, 11, 0))).toHaveLength(1);
    for (const [type, code] of [
      [3, 1],
      [3, 3],
      [11, 0],
      [12, 0],
      [5, 1],
      [4, 0],
    ]) {
      h.rx('pa', icmpErrorFrame(A, GW.mac, FAR.ip, 1, type, code));
    }
    expect(allOut(h)).toEqual([]);
    expect(h.drops('icmp-error')).toEqual({ 'ip4.ttl-expired': 1, 'icmp-error.about-icmp-error': 6 });
  });

  it('an ICMP error with TTL left is forwarded like any packet', () => {
    const h = new Harness();
    introduce(h, A);
    h.rx('pa', icmpErrorFrame(A, GW.mac, FAR.ip, 9, 3, 3));
    const [out] = h.take('up');
    expect(ip4Of(out)).toMatchObject({ ttl: 8, proto: 1, checksumOk: true });
  });

  it('answers an expiring first fragment, never a later one', () => {
    const h = new Harness();
    introduce(h, A);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: FAR.ip, ttl: 1, mf: true, id: 1 }));
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: FAR.ip, ttl: 1, mf: true, fragOffset: 80, id: 2 }));
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: FAR.ip, ttl: 1, fragOffset: 160, id: 3 }));
    const errs = h.take('pa');
    expect(errs).toHaveLength(1);
    expect(isIcmp(errs[0], 11, 0)).toBe(true);
    expect(ip4Of(Buffer.concat([Buffer.alloc(14), icmpOf(errs[0]).body])).id).toBe(1);
    expect(h.drops('icmp-error')).toEqual({ 'ip4.ttl-expired': 1, 'icmp-error.not-first-fragment': 2 });
  });

  it('answers UDP to the router in a unicast frame with port unreachable, but not in a broadcast frame', () => {
    const h = new Harness();
    introduce(h, A);
    h.rx('pa', udpFrame({ from: A, toMac: BCAST, dst: GW.ip }));
    expect(h.take('pa')).toEqual([]);
    expect(h.drops('icmp-error')).toEqual({ 'icmp-error.broadcast': 1 });
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: GW.ip }));
    expect(h.take('pa').filter((f) => isIcmp(f, 3, 3))).toHaveLength(1);
  });

  it('answers nothing to UDP or other protocols sent to a broadcast address', () => {
    const h = new Harness();
    introduce(h, A);
    for (const dst of ['10.244.1.255', '255.255.255.255', '192.168.50.255']) {
      h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst }));
      h.rx('pa', udpFrame({ from: A, toMac: BCAST, dst }));
      h.rx('pa', F.ethernet(GW.mac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst, proto: 99 }, F.bytes(20))));
    }
    expect(allOut(h).filter((f) => isIcmp(f))).toEqual([]);
    expect(h.take('up')).toEqual([]);
    expect(h.counters('icmp-error').packets).toBe(0);
  });

  it('refuses, in a hand-made batch, errors about broadcast and multicast destinations and unanswerable sources', () => {
    const h = new Harness();
    introduce(h, A);
    const { pool } = h.dp.ctx;
    const stage = h.dp.stages.icmpError;
    const make = (src: string, dst: string): number => {
      const slot = pool.fill(udpFrame({ from: { mac: A.mac, ip: src }, toMac: GW.mac, dst }), h.port('pa'));
      pool.l3[slot] = pool.start[slot] + 14;
      pool.rxIf[slot] = h.dp.ctx.ifs.indexOf('cni0');
      pool.icmpError[slot] = (11 << 24) >>> 0;
      return slot;
    };
    for (const [src, dst] of [
      [A.ip, '10.244.1.255'],
      [A.ip, '255.255.255.255'],
      [A.ip, '224.0.0.9'],
      ['0.0.0.0', FAR.ip],
      ['127.0.0.1', FAR.ip],
      ['224.0.0.1', FAR.ip],
      [A.ip, FAR.ip],
    ]) {
      stage.enqueue(make(src, dst));
    }
    h.dp.graph.dispatch();
    expect(h.drops('icmp-error')).toEqual({
      'icmp-error.broadcast': 3,
      'icmp-error.bad-source': 3,
      'ip4.ttl-expired': 1,
    });
    expect(h.take('pa').filter((f) => isIcmp(f, 11, 0))).toHaveLength(1);
  });

  it('limits errors with a token bucket: ratePerSec 1, burst 2 → two of three at once, one more a second later', () => {
    const h = new Harness(LAB + 'icmp: { ratePerSec: 1, burst: 2 }\n');
    introduce(h, A);
    const t = h.now;
    h.rxBatch('pa', [1, 2, 3].map((id) => udpFrame({ from: A, toMac: GW.mac, dst: FAR.ip, ttl: 1, id })), t);
    expect(h.take('pa').filter((f) => isIcmp(f, 11, 0))).toHaveLength(2);
    expect(h.drops('icmp-error')).toEqual({ 'ip4.ttl-expired': 2, 'icmp-error.rate-limited': 1 });
    h.rxBatch('pa', [4, 5].map((id) => udpFrame({ from: A, toMac: GW.mac, dst: FAR.ip, ttl: 1, id })), t + SEC);
    expect(h.take('pa').filter((f) => isIcmp(f, 11, 0))).toHaveLength(1);
    expect(h.drops('icmp-error')['icmp-error.rate-limited']).toBe(2);
  });
});

describe('icmp-error: per-destination limit (Linux icmp_ratelimit)', () => {
  it('sends a destination 6 errors at once, then 1 a second; another destination has its own budget', () => {
    const h = new Harness();
    introduce(h, A);
    introduce(h, B);
    const t = h.now;
    h.rxBatch('pa', Array.from({ length: 10 }, (_, i) => udpFrame({ from: A, toMac: GW.mac, dst: FAR.ip, ttl: 1, id: i })), t);
    expect(h.take('pa').filter((f) => isIcmp(f, 11, 0))).toHaveLength(6);
    h.rxBatch('pb', [udpFrame({ from: B, toMac: GW.mac, dst: FAR.ip, ttl: 1 })], t);
    expect(h.take('pb').filter((f) => isIcmp(f, 11, 0))).toHaveLength(1);
    h.rxBatch('pa', [1, 2].map((i) => udpFrame({ from: A, toMac: GW.mac, dst: FAR.ip, ttl: 1, id: 100 + i })), t + 1000 * MS);
    expect(h.take('pa').filter((f) => isIcmp(f, 11, 0))).toHaveLength(1);
  });

  it('never limits fragmentation needed (path MTU discovery depends on it)', () => {
    const h = new Harness();
    introduce(h, A);
    h.rxBatch('pa', Array.from({ length: 10 }, (_, i) => udpFrame({ from: A, toMac: GW.mac, dst: '10.200.1.1', df: true, dataLen: 1200, id: i })));
    expect(h.take('pa').filter((f) => isIcmp(f, 3, 4))).toHaveLength(10);
  });
});

describe('icmp-error: what the error says', () => {
  it('comes from the bridge address to a pod, quoting the packet as it arrived', () => {
    const h = new Harness();
    introduce(h, A);
    const sent = udpFrame({ from: A, toMac: GW.mac, dst: '10.200.3.4', ttl: 1 });
    h.rx('pa', sent);
    const [err] = h.take('pa');
    expect(ethOf(err)).toEqual({ dst: A.mac, src: GW.mac, type: 0x0800 });
    expect(ip4Of(err)).toMatchObject({ src: GW.ip, dst: A.ip, proto: 1, ttl: 64, tos: 0xc0, checksumOk: true, total: 28 + sent.length - 14 });
    const m = icmpOf(err);
    expect([m.type, m.code, m.checksumOk, m.word2]).toEqual([11, 0, true, 0]);
    expect(m.body).toEqual(sent.subarray(14));
  });

  it('to a sender behind the uplink comes from the uplink address, even when the packet was headed out of another interface', () => {
    const h = new Harness();
    const sent = udpFrame({ from: FAR, toMac: UP.mac, dst: '10.200.3.4', ttl: 1 });
    h.rx('up', sent);
    const [err, ...more] = h.take('up');
    expect(more).toEqual([]);
    expect(ethOf(err)).toEqual({ dst: UPSTREAM2.mac, src: UP.mac, type: 0x0800 });
    expect(ip4Of(err)).toMatchObject({ src: UP.ip, dst: FAR.ip, checksumOk: true });
    expect(isIcmp(err, 11, 0)).toBe(true);
    expect(h.take('slow')).toEqual([]);
  });

  it('to a sender whose route back is through the uplink comes from the uplink address though the packet arrived on another interface', () => {
    const h = new Harness();
    // FAR's packet arrives on slow (asymmetric path); the way back to FAR is via up.
    h.rx('slow', udpFrame({ from: { mac: SLOW_GW.mac, ip: FAR.ip }, toMac: SLOW.mac, dst: '10.244.1.9', ttl: 1 }));
    expect(h.take('slow')).toEqual([]);
    const [err] = h.take('up');
    expect(ip4Of(err)).toMatchObject({ src: UP.ip, dst: FAR.ip });
    expect(isIcmp(err, 11, 0)).toBe(true);
  });

  it('about a packet to one of our addresses comes from that address', () => {
    const h = new Harness();
    h.rx('up', udpFrame({ from: FAR, toMac: UP.mac, dst: GW.ip }));
    const [err] = h.take('up');
    expect(isIcmp(err, 3, 3)).toBe(true);
    expect(ip4Of(err)).toMatchObject({ src: GW.ip, dst: FAR.ip, checksumOk: true });
  });

  it('keeps the whole error within 576 bytes for a big packet', () => {
    const h = new Harness();
    introduce(h, A);
    const sent = udpFrame({ from: A, toMac: GW.mac, dst: FAR.ip, ttl: 1, dataLen: 1400 });
    h.rx('pa', sent);
    const [err] = h.take('pa');
    expect(ip4Of(err).total).toBe(576);
    expect(err.length).toBe(14 + 576);
    const m = icmpOf(err);
    expect(m.checksumOk).toBe(true);
    expect(m.body).toEqual(sent.subarray(14, 14 + 576 - 28));
  });

  it('quotes a small packet whole', () => {
    const h = new Harness();
    introduce(h, A);
    const sent = udpFrame({ from: A, toMac: GW.mac, dst: FAR.ip, ttl: 1, dataLen: 3 });
    h.rx('pa', sent);
    const [err] = h.take('pa');
    expect(icmpOf(err).body).toEqual(sent.subarray(14));
  });
});

describe('ip4-local and icmp-local', () => {
  for (const [name, addr] of [
    ['the bridge address', GW.ip],
    ['the uplink address', UP.ip],
    ['the narrow link address', SLOW.ip],
  ]) {
    it(`answers an echo request from a pod to ${name} from that address`, () => {
      const h = new Harness();
      introduce(h, A);
      const req = pingFrame({ from: A, toMac: GW.mac, dst: addr, seq: 9 });
      h.rx('pa', req);
      const [reply, ...more] = h.take('pa');
      expect(more).toEqual([]);
      expect(ethOf(reply)).toEqual({ dst: A.mac, src: GW.mac, type: 0x0800 });
      expect(ip4Of(reply)).toMatchObject({ src: addr, dst: A.ip, proto: 1, ttl: 64, checksumOk: true });
      const m = icmpOf(reply);
      expect([m.type, m.code, m.checksumOk, m.word2]).toEqual([0, 0, true, 9]);
      expect(reply.subarray(14 + 20 + 4)).toEqual(req.subarray(14 + 20 + 4));
      expect(h.dp.stages.icmpLocal.echoReplies).toBe(1);
    });
  }

  it('answers an echo request on the uplink to the uplink address', () => {
    const h = new Harness();
    h.rx('up', pingFrame({ from: FAR, toMac: UP.mac, dst: UP.ip }));
    const [reply] = h.take('up');
    expect(ethOf(reply)).toEqual({ dst: UPSTREAM2.mac, src: UP.mac, type: 0x0800 });
    expect(ip4Of(reply)).toMatchObject({ src: UP.ip, dst: FAR.ip, checksumOk: true });
    expect(icmpOf(reply)).toMatchObject({ type: 0, code: 0, checksumOk: true });
  });

  it('ignores an echo request to a broadcast address', () => {
    const h = new Harness();
    introduce(h, A);
    h.rx('pa', pingFrame({ from: A, toMac: BCAST, dst: '10.244.1.255' }));
    h.rx('pa', pingFrame({ from: A, toMac: GW.mac, dst: '10.244.1.255' }));
    h.rx('pa', pingFrame({ from: A, toMac: BCAST, dst: '255.255.255.255' }));
    expect(h.take('pa')).toEqual([]);
    expect(h.drops('icmp-local')).toEqual({ 'icmp.broadcast-request': 3 });
    expect(h.dp.stages.icmpLocal.echoReplies).toBe(0);
  });

  it('answers UDP to the router with port unreachable (3/3) and another protocol with protocol unreachable (3/2)', () => {
    const h = new Harness();
    introduce(h, A);
    const udp = udpFrame({ from: A, toMac: GW.mac, dst: GW.ip, dport: 9 });
    h.rx('pa', udp);
    h.rx('pa', F.ethernet(GW.mac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: GW.ip, proto: 99 }, F.bytes(20))));
    const [pu, pr] = h.take('pa');
    expect(isIcmp(pu, 3, 3)).toBe(true);
    expect(ip4Of(pu)).toMatchObject({ src: GW.ip, dst: A.ip, checksumOk: true });
    expect(icmpOf(pu).body).toEqual(udp.subarray(14));
    expect(isIcmp(pr, 3, 2)).toBe(true);
  });

  it('drops bad ICMP checksums and ICMP other than echo requests for the router, with reasons', () => {
    const h = new Harness();
    introduce(h, A);
    const bad = pingFrame({ from: A, toMac: GW.mac, dst: GW.ip });
    bad[14 + 20 + 2] ^= 0xff;
    h.rx('pa', bad);
    h.rx('pa', F.ethernet(GW.mac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: GW.ip, proto: 1 }, F.icmpEcho(0, 1, 1, []))));
    expect(h.take('pa')).toEqual([]);
    expect(h.drops('icmp-local')).toEqual({
      'icmp.bad-checksum': 1,
      'icmp.absorbed': 1,
    });
  });

  it('answers a timestamp request with a timestamp reply: originate kept, receive and transmit in ms since midnight UTC', () => {
    const h = new Harness();
    introduce(h, A);
    const icmp = [13, 0, 0, 0, 0x4e, 0x50, 0, 1, 0x00, 0xbc, 0x61, 0x4e, 0, 0, 0, 0, 0, 0, 0, 0];
    const c = F.checksum(icmp);
    icmp[2] = c >> 8;
    icmp[3] = c & 0xff;
    h.rx('pa', F.ethernet(GW.mac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: GW.ip, proto: 1 }, icmp)));
    const [reply] = h.take('pa');
    expect(ip4Of(reply)).toMatchObject({ src: GW.ip, dst: A.ip, total: 40, ttl: 64, checksumOk: true });
    const m = reply.subarray(34);
    expect([m[0], m[1], m.readUInt16BE(4), m.readUInt16BE(6), m.readUInt32BE(8)]).toEqual([14, 0, 0x4e50, 1, 12345678]);
    const ms = Math.floor(h.now / 1000) % 86_400_000;
    expect([m.readUInt32BE(12), m.readUInt32BE(16)]).toEqual([ms, ms]);
    expect(F.checksum(m)).toBe(0);
  });
});

describe('tcp-reset', () => {
  const tcpFrame = (flags: number, seq: number, ack: number, payload = 0): Buffer => {
    const seg = [0x9c, 0x40, 0x00, 0x50, ...u32(seq), ...u32(ack), 0x50, flags, 0xff, 0xff, 0, 0, 0, 0, ...F.bytes(payload)];
    const pseudo = [...F.ip(A.ip), ...F.ip(GW.ip), 0, 6, seg.length >> 8, seg.length & 0xff, ...seg];
    const c = F.checksum(pseudo);
    seg[16] = c >> 8;
    seg[17] = c & 0xff;
    return F.ethernet(GW.mac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: GW.ip, proto: 6, id: 5 }, seg));
  };
  const u32 = (v: number): number[] => [(v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
  const tcpOf = (f: Buffer) => ({ sport: f.readUInt16BE(34), dport: f.readUInt16BE(36), seq: f.readUInt32BE(38), ack: f.readUInt32BE(42), flags: f[47], doff: f[46] >> 4 });
  const tcpChecksumOk = (f: Buffer): boolean => F.checksum([...F.ip(GW.ip), ...F.ip(A.ip), 0, 6, 0, 20, ...f.subarray(34, 54)]) === 0;

  it('answers a SYN to a closed port with RST+ACK acknowledging it (seq 0, ack = seq + 1)', () => {
    const h = new Harness();
    introduce(h, A);
    h.rx('pa', tcpFrame(0x02, 1000, 0));
    const [rst] = h.take('pa');
    expect(ip4Of(rst)).toMatchObject({ src: GW.ip, dst: A.ip, proto: 6, ttl: 64, df: true, total: 40, checksumOk: true });
    expect(tcpOf(rst)).toEqual({ sport: 80, dport: 40000, seq: 0, ack: 1001, flags: 0x14, doff: 5 });
    expect(tcpChecksumOk(rst)).toBe(true);
  });

  it('answers a segment with ACK with a bare RST whose seq is that ack, counting data and FIN otherwise', () => {
    const h = new Harness();
    introduce(h, A);
    h.rx('pa', tcpFrame(0x18, 5000, 0xfffffff0, 10));
    expect(tcpOf(h.take('pa')[0])).toMatchObject({ seq: 0xfffffff0, ack: 0, flags: 0x04 });
    h.rx('pa', tcpFrame(0x01, 0xfffffffe, 0, 3));
    expect(tcpOf(h.take('pa')[0])).toMatchObject({ seq: 0, ack: 2, flags: 0x14 });
  });

  it('never answers a reset', () => {
    const h = new Harness();
    introduce(h, A);
    h.rx('pa', tcpFrame(0x04, 1, 0));
    expect(h.take('pa')).toEqual([]);
    expect(h.drops('tcp-reset')).toEqual({ 'tcp.reset-to-router': 1 });
  });
});

describe('ip4-reassemble', () => {
  /** An echo request of `size` payload bytes to the gateway, as fragments of at most `chunk` payload bytes. */
  function fragmentedPing(size: number, chunk: number, id = 0x3333): { frames: Buffer[]; icmp: number[] } {
    const icmp = F.icmpEcho(8, 0x55, 7, F.bytes(size, 11));
    const frames: Buffer[] = [];
    for (let off = 0; off < icmp.length; off += chunk) {
      const part = icmp.slice(off, off + chunk);
      const more = off + chunk < icmp.length;
      frames.push(F.ethernet(GW.mac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: GW.ip, proto: 1, id, mf: more, fragOffset: off }, part)));
    }
    return { frames, icmp };
  }

  it('answers a fragmented echo request, in fragments, with the whole payload back', () => {
    const h = new Harness();
    introduce(h, A);
    const { frames, icmp } = fragmentedPing(2000, 1480);
    h.rxBatch('pa', frames.reverse());
    const out = h.take('pa');
    expect(out).toHaveLength(2);
    const ips = out.map((f) => ip4Of(f));
    expect(ips.map((i) => [i.src, i.dst, i.mf, i.fragOffset, i.checksumOk])).toEqual([
      [GW.ip, A.ip, true, 0, true],
      [GW.ip, A.ip, false, 1480, true],
    ]);
    const reply = Buffer.concat(out.map((f) => f.subarray(34)));
    expect(reply.length).toBe(icmp.length);
    expect([reply[0], F.checksum(reply)]).toEqual([0, 0]);
    expect(reply.subarray(4)).toEqual(Buffer.from(icmp.slice(4)));
    expect(h.dp.stages.ip4Reassemble.reassembled).toBe(1);
  });

  it('drops a datagram whose fragments overlap', () => {
    const h = new Harness();
    introduce(h, A);
    const { frames } = fragmentedPing(2000, 1480);
    const overlap = F.ethernet(GW.mac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: GW.ip, proto: 1, id: 0x3333, mf: true, fragOffset: 8 }, F.bytes(16)));
    h.rxBatch('pa', [frames[0], overlap, frames[1]]);
    expect(h.take('pa')).toEqual([]);
    expect(h.drops('ip4-reassemble')['ip4.fragment-overlap']).toBe(1);
  });

  it('gives up on an incomplete datagram after 30 s and frees its slot', () => {
    const h = new Harness();
    introduce(h, A);
    const before = h.dp.pool.available;
    h.rx('pa', fragmentedPing(2000, 1480).frames[0]);
    expect(h.dp.pool.available).toBe(before - 1);
    h.advance(h.now + 29 * SEC);
    expect(h.dp.pool.available).toBe(before - 1);
    h.advance(h.now + 2 * SEC);
    expect(h.dp.pool.available).toBe(before);
    expect(h.drops('ip4-reassemble')['ip4.reassembly-timeout']).toBe(1);
  });
});
