/**
 * Bad input never crashes the dataplane: 200,000 random and mutated frames (truncations, bit
 * flips, lying length fields, random EtherTypes) on every port of the lab, with time moving
 * on so timers fire. No exception may escape, every slot must come back to the pool, and
 * every frame must be accounted for as processed by ethernet-input.
 *
 * The same again with connection tracking and masquerade on (`nat`), with seeds that make
 * flows leave and come back translated (TCP, UDP, echo, fragments, ICMP errors quoting
 * them); then, once the clock has passed the longest conntrack timeout, no entry is left.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { VirtualClock } from '../../src/core/clock.ts';
import { Random } from '../../src/core/random.ts';
import { Dataplane } from '../../src/dataplane/dataplane.ts';
import { mutate, seeds } from '../helpers/fuzz-frames.ts';
import * as F from '../helpers/frames.ts';
import { A, B, GW, LAB, T0, UP } from './stage-harness.test.ts';

const SERVER = '203.0.113.5';
const UPSTREAM2_MAC = '02:00:00:00:50:02';

/** Frames of masqueraded flows both ways, and errors about them. */
function natSeeds(): Buffer[] {
  const out = (proto: number, l4: number[]): Buffer => F.ethernet(GW.mac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: SERVER, proto }, l4));
  const back = (proto: number, l4: number[], ttl = 64): Buffer => F.ethernet(UP.mac, UPSTREAM2_MAC, 0x0800, F.ipv4({ src: SERVER, dst: UP.ip, proto, ttl }, l4));
  const sentUdp = F.ipv4({ src: UP.ip, dst: SERVER, proto: 17 }, F.udp(UP.ip, SERVER, 40000, 53, F.bytes(8)));
  const sentTcp = F.ipv4({ src: UP.ip, dst: SERVER, proto: 6 }, F.tcp(UP.ip, SERVER, 41000, 443, F.TCP_SYN, 1, 0));
  const big = F.udp(A.ip, SERVER, 40001, 53, F.bytes(2000, 3));
  const frag = (off: number, mf: boolean): Buffer => F.ethernet(GW.mac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: SERVER, proto: 17, id: 9, mf, fragOffset: off }, big.slice(off, off + 1200)));
  return [
    out(17, F.udp(A.ip, SERVER, 40000, 53, F.bytes(8))),
    back(17, F.udp(SERVER, UP.ip, 53, 40000, F.bytes(8))),
    back(17, F.udp(SERVER, UP.ip, 53, 40000, F.bytes(8)), 1),
    out(6, F.tcp(A.ip, SERVER, 41000, 443, F.TCP_SYN, 1, 0)),
    back(6, F.tcp(SERVER, UP.ip, 443, 41000, F.TCP_SYN | F.TCP_ACK, 9, 2)),
    out(6, F.tcp(A.ip, SERVER, 41000, 443, F.TCP_ACK, 2, 10)),
    out(6, F.tcp(A.ip, SERVER, 41000, 443, F.TCP_FIN | F.TCP_ACK, 2, 10)),
    back(6, F.tcp(SERVER, UP.ip, 443, 41000, F.TCP_RST, 10, 0)),
    out(1, F.icmpEcho(8, 7, 1, F.bytes(8))),
    back(1, F.icmpEcho(0, 7, 1, F.bytes(8))),
    back(1, F.icmpError(3, 3, sentUdp.slice(0, 28))),
    back(1, F.icmpError(11, 0, sentTcp)),
    back(1, F.icmpError(3, 4, sentUdp.slice(0, 24), 1400)),
    frag(0, true),
    frag(1200, false),
    F.ethernet(B.mac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: B.ip, proto: 6 }, F.tcp(A.ip, B.ip, 5, 6, F.TCP_SYN, 1, 0))),
  ];
}


function fuzz(yaml: string, base: Buffer[], seed: number) {
  const clock = new VirtualClock();
  clock.set(T0);
  const dp = new Dataplane(parseConfig(yaml, 'fuzz'), { clock, poolSize: 1024 });
  let sent = 0;
  dp.ctx.ports.names.forEach((_, p) => dp.setDriver(p, { transmit: (_pool, _s, n) => ((sent += n), n) }));
  const free = dp.pool.available;
  const r = new Random(seed);
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
  return { dp, clock, now, free, received, sent: () => sent };
}

describe('dataplane fuzz', () => {
  it('survives 200,000 random and mutated frames on every port without throwing or leaking a slot', () => {
    const { dp, clock, now, free, received, sent } = fuzz(LAB + 'arp: { queueLen: 2 }\n', seeds(), 12345);
    // Let every timer (ARP retries, reassembly expiry, neighbour states) run out.
    clock.set(now + 600_000_000);
    for (let guard = 0; guard < 100_000 && dp.nextTimerUs() <= clock.nowUs(); guard++) dp.run();
    dp.run();
    expect(dp.graph.stages.filter((s) => s.queued !== 0).map((s) => s.name)).toEqual([]);
    expect(dp.pool.available).toBe(free);
    expect(dp.stageCounters()['ethernet-input'].packets).toBe(received);
    expect(received).toBeGreaterThan(180_000);
    expect(sent()).toBeGreaterThan(1_000);
  });

  it('survives them with connection tracking and masquerade on, and leaves no entry once every timeout has passed', () => {
    const yaml = LAB + 'arp: { queueLen: 2 }\nnat: { clusterCIDR: 10.244.0.0/16 }\nconntrack: { max: 4096 }\n';
    const { dp, clock, now, free, received, sent } = fuzz(yaml, [...seeds(), ...natSeeds(), ...natSeeds()], 54321);
    const ct = dp.ctx.conntrack!;
    const hooks = dp.conntrackHooks!;
    expect(ct.created).toBeGreaterThan(1_000);
    expect(hooks.masquerade.masqueraded).toBeGreaterThan(100);
    expect(dp.stageCounters()['bridge-ip4'].packets).toBeGreaterThan(100);
    // Past the longest timeout (ESTABLISHED, a day), every timer runs at its own instant.
    const longest = Math.max(...Object.values(ct.timeouts)) * 1_000_000;
    const end = now + longest + 10_000_000;
    for (let guard = 0; guard < 1_000_000 && dp.nextTimerUs() <= end; guard++) {
      clock.set(dp.nextTimerUs());
      dp.run();
    }
    clock.set(end);
    dp.run();
    expect(ct.count).toBe(0);
    expect(ct.nextDeadline()).toBe(Infinity);
    expect(dp.graph.stages.filter((s) => s.queued !== 0).map((s) => s.name)).toEqual([]);
    expect(dp.pool.available).toBe(free);
    expect(dp.stageCounters()['ethernet-input'].packets).toBe(received);
    expect(sent()).toBeGreaterThan(1_000);
  });
});
