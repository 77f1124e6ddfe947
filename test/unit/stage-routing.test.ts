/**
 * ip4-forward and ip4-fragment (with route lookup in ip4-input): longest prefix match, onlink
 * and connected next hops, TTL and its checksum, DF with an oversize packet, fragmentation of
 * whole datagrams and of fragments.
 */
import { describe, expect, it } from 'vitest';
import * as F from '../helpers/frames.ts';
import {
  A,
  BCAST,
  GW,
  Harness,
  LAB,
  MS,
  SLOW,
  SLOW_GW,
  UP,
  UPSTREAM,
  UPSTREAM2,
  arpFrame,
  arpOf,
  ethOf,
  icmpOf,
  introduce,
  ip4Of,
  isArp,
  isIcmp,
  udpFrame,
} from './stage-harness.test.ts';

/** xorshift32, for seeded random headers. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>>= 0);
  };
}

describe('route lookup', () => {
  it('takes the longest matching prefix: the /24 static route over the default', () => {
    const h = new Harness();
    introduce(h, A);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '203.0.113.5' }));
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '203.0.114.5' }));
    const [viaStatic, viaDefault] = h.take('up');
    expect(ethOf(viaStatic)).toEqual({ dst: UPSTREAM2.mac, src: UP.mac, type: 0x0800 });
    expect(ethOf(viaDefault)).toEqual({ dst: UPSTREAM.mac, src: UP.mac, type: 0x0800 });
    expect([ip4Of(viaStatic).dst, ip4Of(viaDefault).dst]).toEqual(['203.0.113.5', '203.0.114.5']);
  });

  it('sends to a connected destination directly: the next hop is the destination itself', () => {
    const h = new Harness();
    introduce(h, A);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '10.9.0.5' }));
    const [req] = h.take('slow');
    expect(arpOf(req)).toMatchObject({ op: 1, spa: SLOW.ip, tpa: '10.9.0.5' });
    // And a destination behind a gateway on the same link goes to the gateway's MAC.
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '10.200.7.7' }));
    const [fwd] = h.take('slow');
    expect(ethOf(fwd)).toEqual({ dst: SLOW_GW.mac, src: SLOW.mac, type: 0x0800 });
    expect(ip4Of(fwd).dst).toBe('10.200.7.7');
  });

  it('routes from the uplink to a pod on the bridge, resolving the pod by ARP on the bridge', () => {
    const h = new Harness();
    h.rx('up', udpFrame({ from: UPSTREAM, src: '198.18.1.1', toMac: UP.mac, dst: A.ip }));
    const reqs = ['pa', 'pb', 'pc'].map((p) => h.take(p));
    for (const [r] of reqs) {
      expect(ethOf(r)).toEqual({ dst: BCAST, src: GW.mac, type: 0x0806 });
      expect(arpOf(r)).toMatchObject({ op: 1, sha: GW.mac, spa: GW.ip, tpa: A.ip });
    }
    h.rx('pa', arpFrame({ ethDst: GW.mac, ethSrc: A.mac, op: 2, sha: A.mac, spa: A.ip, tha: GW.mac, tpa: GW.ip }), h.now + 5 * MS);
    const [fwd] = h.take('pa');
    expect(ethOf(fwd)).toEqual({ dst: A.mac, src: GW.mac, type: 0x0800 });
    expect(ip4Of(fwd)).toMatchObject({ src: '198.18.1.1', dst: A.ip, ttl: 63, checksumOk: true });
    expect([h.take('pb'), h.take('pc')]).toEqual([[], []]);
  });

  it('uses an onlink gateway outside every subnet of its device', () => {
    const h = new Harness(LAB.replace('routes:\n', 'routes:\n  - { dst: 198.51.100.0/24, via: 172.16.0.1, dev: up, onlink: true }\n'));
    introduce(h, A);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '198.51.100.20', id: 5 }));
    const [req] = h.take('up');
    expect(ethOf(req)).toEqual({ dst: BCAST, src: UP.mac, type: 0x0806 });
    expect(arpOf(req)).toEqual({ op: 1, sha: UP.mac, spa: UP.ip, tha: '00:00:00:00:00:00', tpa: '172.16.0.1' });
    const gwMac = '02:00:00:00:16:01';
    h.rx('up', arpFrame({ ethDst: UP.mac, ethSrc: gwMac, op: 2, sha: gwMac, spa: '172.16.0.1', tha: UP.mac, tpa: UP.ip }), h.now + 5 * MS);
    const [fwd] = h.take('up');
    expect(ethOf(fwd)).toEqual({ dst: gwMac, src: UP.mac, type: 0x0800 });
    expect(ip4Of(fwd)).toMatchObject({ id: 5, dst: '198.51.100.20', ttl: 63 });
  });
});

describe('ip4-forward: TTL', () => {
  it('decrements TTL and updates the checksum to exactly what a full recomputation gives', () => {
    const h = new Harness();
    introduce(h, A);
    const next = rng(11);
    const sent: Buffer[] = [];
    for (let i = 0; i < 300; i++) {
      const f = udpFrame({ from: A, toMac: GW.mac, dst: `203.0.113.${1 + (next() % 250)}`, ttl: 2 + (next() % 254), id: next() & 0xffff, df: (next() & 1) === 1, dataLen: next() % 64 });
      f[15] = next() & 0xfc; // TOS
      f.writeUInt16BE(0, 24);
      f.writeUInt16BE(F.checksum(f.subarray(14, 34)), 24);
      sent.push(f);
    }
    h.rxBatch('pa', sent);
    const out = h.take('up');
    expect(out).toHaveLength(sent.length);
    for (let i = 0; i < sent.length; i++) {
      const o = out[i];
      const want = Buffer.from(sent[i].subarray(14, 34));
      want[8] -= 1;
      want.writeUInt16BE(0, 10);
      want.writeUInt16BE(F.checksum(want), 10);
      expect(o.subarray(14, 34)).toEqual(want);
      expect(o.subarray(34)).toEqual(sent[i].subarray(34));
    }
  });

  it('computes the same checksum in a hand-made batch over 20,000 random headers', () => {
    const h = new Harness(LAB, 64);
    const { pool, ifs } = h.dp.ctx;
    const stage = h.dp.stages.ip4Forward;
    const upIf = ifs.indexOf('up');
    const next = rng(12);
    for (let round = 0; round < 400; round++) {
      const wants: Buffer[] = [];
      for (let i = 0; i < 50; i++) {
        const hdr = Buffer.alloc(20);
        for (let j = 0; j < 20; j += 4) hdr.writeUInt32BE(next(), j);
        hdr[0] = 0x45;
        hdr.writeUInt16BE(20 + (next() % 1400), 2);
        hdr[6] &= 0xbf; // DF clear; the MTU decides nothing below 1500
        hdr[8] = 2 + (next() % 254);
        hdr.writeUInt16BE(0, 10);
        hdr.writeUInt16BE(F.checksum(hdr), 10);
        const slot = pool.alloc();
        const s = pool.start[slot];
        hdr.copy(pool.data, s + 14);
        pool.len[slot] = 34;
        pool.l3[slot] = s + 14;
        pool.txIf[slot] = upIf;
        stage.enqueue(slot);
        const want = Buffer.from(hdr);
        want[8] -= 1;
        want.writeUInt16BE(0, 10);
        want.writeUInt16BE(F.checksum(want), 10);
        wants.push(want);
      }
      stage.run();
      // ip4-forward hands routed packets to the POSTROUTING hook, or, while the hook has no
      // handlers and nothing is traced (here), straight to neighbour-output.
      const nb = h.dp.stages.neighbourOutput;
      expect(nb.queued).toBe(50);
      for (let i = 0; i < 50; i++) {
        const slot = nb.queue[i];
        const got = pool.data.subarray(pool.l3[slot], pool.l3[slot] + 20);
        if (!got.equals(wants[i])) expect(got).toEqual(wants[i]);
        pool.free(slot);
      }
      nb.queued = 0;
    }
  });

  it('answers TTL 1 and TTL 0 with time exceeded and forwards TTL 2 as TTL 1', () => {
    const h = new Harness();
    introduce(h, A);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '203.0.113.5', ttl: 0 }));
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '203.0.113.5', ttl: 1 }));
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '203.0.113.5', ttl: 2 }));
    expect(h.take('pa').map((f) => isIcmp(f, 11, 0))).toEqual([true, true]);
    expect(h.take('up').map((f) => ip4Of(f).ttl)).toEqual([1]);
    expect(h.dp.stages.ip4Forward.ttlExpired).toBe(2);
  });
});

describe('ip4-forward and ip4-fragment: the MTU', () => {
  it('answers DF and larger than the egress MTU with 3/4 carrying the MTU, sending nothing on', () => {
    const h = new Harness();
    introduce(h, A);
    const sent = udpFrame({ from: A, toMac: GW.mac, dst: '10.200.0.9', df: true, dataLen: 1200 });
    h.rx('pa', sent);
    expect(h.take('slow')).toEqual([]);
    const [err] = h.take('pa');
    expect(isIcmp(err, 3, 4)).toBe(true);
    const m = icmpOf(err);
    expect(m.word2).toBe(1000);
    expect(m.checksumOk).toBe(true);
    expect(ip4Of(err)).toMatchObject({ src: GW.ip, dst: A.ip });
    // The quote is the packet as it arrived (TTL not yet decremented).
    expect(m.body.subarray(0, 28)).toEqual(sent.subarray(14, 42));
    expect(h.dp.stages.ip4Forward.fragNeeded).toBe(1);
  });

  it('forwards DF at exactly the MTU whole', () => {
    const h = new Harness();
    introduce(h, A);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '10.200.0.9', df: true, dataLen: 1000 - 28 }));
    const [out] = h.take('slow');
    expect(ip4Of(out)).toMatchObject({ total: 1000, df: true, mf: false });
    expect(h.take('pa')).toEqual([]);
  });

  it('fragments a datagram without DF into MTU-sized pieces on 8-byte boundaries', () => {
    const h = new Harness();
    introduce(h, A);
    const sent = udpFrame({ from: A, toMac: GW.mac, dst: '10.200.0.9', dataLen: 1800, id: 0x4321 });
    h.rx('pa', sent);
    const frags = h.take('slow');
    expect(frags.map((f) => [ip4Of(f).mf, ip4Of(f).fragOffset, ip4Of(f).total])).toEqual([
      [true, 0, 996],
      [false, 976, 20 + 1808 - 976],
    ]);
    for (const f of frags) {
      expect(ip4Of(f)).toMatchObject({ id: 0x4321, ttl: 63, proto: 17, src: A.ip, df: false, checksumOk: true });
      expect(ethOf(f)).toEqual({ dst: SLOW_GW.mac, src: SLOW.mac, type: 0x0800 });
      expect(f.length).toBe(14 + ip4Of(f).total);
    }
    expect(Buffer.concat(frags.map((f) => f.subarray(34)))).toEqual(sent.subarray(34));
  });

  it('fragments a fragment: offsets add to its own, MF stays set on every piece of a middle fragment', () => {
    const h = new Harness();
    introduce(h, A);
    const payload = F.bytes(1480, 4);
    const middle = F.ethernet(GW.mac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: '10.200.0.9', proto: 17, id: 77, mf: true, fragOffset: 800 }, payload));
    h.rx('pa', middle);
    const frags = h.take('slow');
    expect(frags.map((f) => [ip4Of(f).mf, ip4Of(f).fragOffset, ip4Of(f).total - 20])).toEqual([
      [true, 800, 976],
      [true, 1776, 504],
    ]);
    expect(Buffer.concat(frags.map((f) => f.subarray(34)))).toEqual(Buffer.from(payload));
    expect(frags.every((f) => ip4Of(f).checksumOk && ip4Of(f).id === 77)).toBe(true);
  });

  it('fragments a last fragment: only the final piece has MF clear', () => {
    const h = new Harness();
    introduce(h, A);
    const last = F.ethernet(GW.mac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: '10.200.0.9', proto: 17, id: 78, fragOffset: 1600 }, F.bytes(1200, 5)));
    h.rx('pa', last);
    const frags = h.take('slow');
    expect(frags.map((f) => [ip4Of(f).mf, ip4Of(f).fragOffset, ip4Of(f).total - 20])).toEqual([
      [true, 1600, 976],
      [false, 2576, 224],
    ]);
  });

  it('fragments a packet for a pod when it is bigger than the bridge MTU', () => {
    const h = new Harness(LAB.replace('mac: 0a:58:0a:f4:01:01 }', 'mac: 0a:58:0a:f4:01:01, mtu: 600 }'));
    introduce(h, A);
    h.rx('up', udpFrame({ from: UPSTREAM, src: '198.18.1.1', toMac: UP.mac, dst: A.ip, dataLen: 1000 }));
    const frags = h.take('pa').filter((f) => !isArp(f));
    expect(frags.map((f) => [ip4Of(f).mf, ip4Of(f).fragOffset])).toEqual([
      [true, 0],
      [false, 576],
    ]);
  });
});
