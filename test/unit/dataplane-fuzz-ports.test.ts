/**
 * The dataplane fuzz on a node with 250 ports (248 pods on cni0, two L3 ports), received the
 * way `nodeplane run` receives: through TapPorts on a fake TAP driver, sharing one RxBudget
 * over the pool `run` would use (8192 slots of 4 KiB; with offload 2048 of 68 KiB, every frame
 * behind a virtio-net header). Random and mutated frames on random ports, time moving on so
 * timers fire. No exception may escape, no slot may be lost, and every frame a device held
 * must be accounted for: read into the graph, or dropped and counted for want of a slot.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { VirtualClock } from '../../src/core/clock.ts';
import { OFFLOAD_SLOT_SIZE } from '../../src/core/frame-pool.ts';
import { Random } from '../../src/core/random.ts';
import { Dataplane } from '../../src/dataplane/dataplane.ts';
import type { Logger } from '../../src/log.ts';
import { RxBudget } from '../../src/ports/rx-budget.ts';
import { TapPort } from '../../src/ports/tap-port.ts';
import { FakeTapDriver } from '../helpers/fake-tap.ts';
import { mutate, seeds } from '../helpers/fuzz-frames.ts';
import { LAB, T0 } from './stage-harness.test.ts';

const PODS = 248;
const FRAMES = 200_000;

function config(): string {
  const more = Array.from({ length: PODS - 3 }, (_, i) => `  - { name: p${i + 3}, bridge: cni0 }\n`).join('');
  const yaml = LAB.replace('  - { name: pc, bridge: cni0 }\n', `  - { name: pc, bridge: cni0 }\n${more}`) + 'arp: { queueLen: 2 }\n';
  return yaml;
}

function fuzz(offload: boolean) {
  const clock = new VirtualClock();
  clock.set(T0);
  const cfg = parseConfig(config(), 'fuzz250');
  const dp = new Dataplane(cfg, offload ? { clock, poolSize: cfg.pool.offloadSlots, slotSize: OFFLOAD_SLOT_SIZE } : { clock });
  const driver = new FakeTapDriver();
  driver.keepWritten = false;
  driver.keepReads = false;
  const warned: string[] = [];
  const log = { warn: (o: { port: string }) => warned.push(o.port) } as unknown as Logger;
  const budget = new RxBudget(dp.pool, dp.ctx.ports);
  const ports = cfg.ports.map((p, i) => {
    const port = new TapPort(dp, i, p.name, { log, budget, driver, vnetHdr: offload });
    port.open(p.mtu);
    dp.setDriver(i, port);
    return port;
  });
  for (const p of ports) p.start();
  const idle = dp.pool.available;

  const r = new Random(250);
  const base = seeds();
  const hdr = Buffer.alloc(10);
  let now = T0;
  let queued = 0;
  for (let i = 0; i < FRAMES; i++) {
    now += r.below(20_000);
    while (dp.nextTimerUs() <= now) {
      clock.set(dp.nextTimerUs());
      dp.run();
    }
    clock.set(now);
    const frame = mutate(r, base[r.below(base.length)]);
    driver.queue(cfg.ports[r.below(ports.length)].name, offload ? Buffer.concat([hdr, frame]) : frame);
    queued++;
    if (r.below(8) === 0) driver.wakeAll();
  }
  driver.wakeAll();
  clock.set(now + 600_000_000);
  for (let guard = 0; guard < 100_000 && dp.nextTimerUs() <= clock.nowUs(); guard++) dp.run();
  dp.run();

  const p = dp.ctx.ports;
  let read = 0;
  let noBuffer = 0;
  let sent = 0;
  for (let i = 0; i < p.count; i++) {
    read += p.rxFrames[i];
    noBuffer += p.rxNoBuffer[i];
    sent += p.txFrames[i];
  }
  return { dp, idle, queued, read, noBuffer, sent, warned, floodDrops: dp.stageCounters()['bridge-forward'].drops['bridge.no-slot'] ?? 0 };
}

describe('dataplane fuzz, 250 ports on TAP ports', () => {
  for (const offload of [false, true]) {
    it(`${FRAMES.toLocaleString('en')} frames ${offload ? 'with offload (2048 × 68 KiB)' : 'without offload (8192 × 4 KiB)'}: no exception, no slot lost, every frame accounted for`, () => {
      const { dp, idle, queued, read, noBuffer, sent, warned, floodDrops } = fuzz(offload);
      process.stdout.write(`250 ports, offload ${offload}: ${read} read, ${noBuffer} dropped for want of a slot, ${sent} sent, ${floodDrops} flood copies without a slot\n`);
      expect(dp.graph.stages.filter((s) => s.queued !== 0).map((s) => s.name)).toEqual([]);
      expect(dp.pool.available).toBe(idle);
      expect(read + noBuffer).toBe(queued);
      expect(dp.stageCounters()['ethernet-input'].packets).toBe(read);
      expect(read).toBeGreaterThan(queued * 0.9);
      expect(warned.length).toBe(new Set(warned).size);
      expect(sent).toBeGreaterThan(100_000);
    });
  }
});
