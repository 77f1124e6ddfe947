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
import { mutate, seeds } from '../helpers/fuzz-frames.ts';
import { LAB, T0 } from './stage-harness.test.ts';

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
