/**
 * Bad input never crashes the dataplane: 200,000 random and mutated frames (truncations, bit
 * flips, lying length fields, random EtherTypes) on every port of the lab, with time moving
 * on so timers fire. No exception may escape, every slot must come back to the pool, and
 * every frame must be accounted for as processed by ethernet-input.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { VirtualClock } from '../../src/core/clock.ts';
import { Random } from '../../src/core/random.ts';
import { Dataplane } from '../../src/dataplane/dataplane.ts';
import * as F from '../helpers/frames.ts';
import { A, B, GW, LAB, T0, UP, UPSTREAM, arpFrame, pingFrame, udpFrame } from './stage-harness.test.ts';

function seeds(): Buffer[] {
  const tcp = (flags: number): Buffer =>
    F.ethernet(GW.mac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: GW.ip, proto: 6 }, [0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]));
  return [
    arpFrame({ ethDst: 'ff:ff:ff:ff:ff:ff', ethSrc: A.mac, op: 1, sha: A.mac, spa: A.ip, tpa: GW.ip }),
    arpFrame({ ethDst: UP.mac, ethSrc: UPSTREAM.mac, op: 2, sha: UPSTREAM.mac, spa: UPSTREAM.ip, tha: UP.mac, tpa: UP.ip }),
    pingFrame({ from: A, toMac: GW.mac, dst: GW.ip }),
    pingFrame({ from: A, toMac: GW.mac, dst: '10.9.0.7', ttl: 1 }),
    udpFrame({ from: A, toMac: GW.mac, dst: '8.8.8.8', dataLen: 1400, df: true }),
    udpFrame({ from: A, toMac: GW.mac, dst: '10.200.1.1', dataLen: 1400 }),
    udpFrame({ from: A, toMac: B.mac, dst: B.ip }),
    udpFrame({ from: A, toMac: GW.mac, dst: GW.ip, mf: true }),
    udpFrame({ from: A, toMac: GW.mac, dst: GW.ip, fragOffset: 1480 }),
    tcp(0x02),
    tcp(0x10),
    F.ethernet(GW.mac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: GW.ip, proto: 1 }, [13, 0, 0, 0, ...F.bytes(16)])),
  ];
}

function mutate(r: Random, frame: Buffer): Buffer {
  const f = Buffer.from(frame);
  switch (r.below(6)) {
    case 0:
      return f.subarray(0, r.below(f.length + 1));
    case 1: {
      for (let k = 1 + r.below(4); k > 0; k--) f[r.below(f.length)] ^= 1 << r.below(8);
      return f;
    }
    case 2: {
      // A length field that lies: IHL, total length, UDP length, TCP data offset, ARP lengths.
      const at = [14, 16, 17, 38, 39, 46, 18, 19][r.below(8)];
      if (at < f.length) f[at] = r.nextU32() & 0xff;
      return f;
    }
    case 3:
      f.writeUInt16BE([0x0800, 0x0806, 0x86dd, 0x8100, 0x88a8, r.below(0x10000)][r.below(6)], 12);
      return f;
    case 4:
      return Buffer.from(F.bytes(r.below(1600), r.nextU32()));
    default:
      return f;
  }
}

describe('dataplane fuzz', () => {
  it('survives 200,000 random and mutated frames on every port without throwing or leaking a slot', () => {
    const clock = new VirtualClock();
    clock.set(T0);
    const dp = new Dataplane(parseConfig(LAB + 'arp: { queueLen: 2 }\n', 'fuzz'), { clock, poolSize: 1024 });
    let sent = 0;
    dp.ctx.ports.names.forEach((_, p) => dp.setDriver(p, { transmit: (_pool, _s, n) => ((sent += n), n) }));
    const free = dp.pool.available;
    const r = new Random(12345);
    const base = seeds();
    const ports = dp.ctx.ports.count;
    let now = T0;
    let received = 0;
    for (let i = 0; i < 200_000; i++) {
      now += r.below(20_000);
      while (dp.nextTimerUs() <= now) {
        clock.set(dp.nextTimerUs());
        dp.run();
      }
      clock.set(now);
      const frame = mutate(r, base[r.below(base.length)]);
      if (dp.receive(r.below(ports), frame)) received++;
      if (r.below(8) === 0) dp.run();
    }
    dp.run();
    // Let every timer (ARP retries, reassembly expiry, neighbour states) run out.
    clock.set(now + 600_000_000);
    for (let guard = 0; guard < 100_000 && dp.nextTimerUs() <= clock.nowUs(); guard++) dp.run();
    dp.run();
    expect(dp.graph.stages.filter((s) => s.queued !== 0).map((s) => s.name)).toEqual([]);
    expect(dp.pool.available).toBe(free);
    expect(dp.stageCounters()['ethernet-input'].packets).toBe(received);
    expect(received).toBeGreaterThan(180_000);
    expect(sent).toBeGreaterThan(1_000);
  });
});
