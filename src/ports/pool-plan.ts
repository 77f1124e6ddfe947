/**
 * poolPlan: what a config's frame pool gives it on TAP devices, with offload and without —
 * the memory, the reserve, how many frames a read round takes — and a warning when the pool
 * is too small for the config's largest flood. `nodeplane check` prints it; `nodeplane run`
 * logs the warning for the mode it runs in. The arithmetic is RxBudget's (rx-budget.ts).
 *
 * The pool is all the frame memory there is: slots × slot size, whatever the number of
 * ports (4 KiB slots without offload, 68 KiB with). It is reserved up front and becomes
 * resident as slots are used: the free list hands out the most recently freed slots first,
 * so a steady flow keeps reusing the same few.
 */
import type { Config } from '../config/load.ts';
import { OFFLOAD_SLOT_SIZE, SLOT_SIZE } from '../core/frame-pool.ts';
import { compileTopology } from '../dataplane/compile-topology.ts';
import { RX_RESERVE_BASE, floodFanOut, requirement, type RxRequirement } from './rx-budget.ts';
import { DEFAULT_RX_BATCH } from './tap-port.ts';

export interface PoolModePlan extends RxRequirement {
  offload: boolean;
  /** The config key that sizes this mode's pool. */
  key: 'pool.slots' | 'pool.offloadSlots';
  slots: number;
  slotBytes: number;
  /** slots × slotBytes. */
  bytes: number;
  /** Set when the pool cannot hold the reserve and one frame's flood: floods lose copies. */
  warning?: string;
}

const MiB = 1024 * 1024;

export function describeBytes(n: number): string {
  return n >= 10 * MiB ? `${Math.round(n / MiB)} MiB` : `${(n / MiB).toFixed(1)} MiB`;
}

function modePlan(offload: boolean, slots: number, fanOut: number): PoolModePlan {
  const slotBytes = offload ? OFFLOAD_SLOT_SIZE : SLOT_SIZE;
  const key = offload ? 'pool.offloadSlots' : 'pool.slots';
  // One slot is the shared drain slot, never lent.
  const r = requirement(slots - 1, fanOut, DEFAULT_RX_BATCH);
  const plan: PoolModePlan = { ...r, offload, key, slots, slotBytes, bytes: slots * slotBytes };
  if (slots - 1 < r.minimumSlots) {
    const need = r.minimumSlots + 1;
    plan.warning =
      `${key}: ${slots} slots are too few for this config${offload ? ' with offload' : ''}: its largest flood is ${fanOut} copies ` +
      `of a frame, and a read round needs room for one flood above a reserve of ${RX_RESERVE_BASE + fanOut} slots, ${need} in all ` +
      `(the drain slot included); with fewer, a flood copy or an ICMP error may find no free slot (counted as drops) — ` +
      `raise ${key} to at least ${need}`;
  }
  return plan;
}

/** The plan of each mode `run` may use with this config: without offload always, with offload unless capture.dir forces it off. */
export function poolPlan(config: Config): PoolModePlan[] {
  const fanOut = floodFanOut(compileTopology(config).ports);
  const plans = [modePlan(false, config.pool.slots, fanOut)];
  if (config.capture.dir === undefined) plans.unshift(modePlan(true, config.pool.offloadSlots, fanOut));
  return plans;
}

/** One line for `check`: the memory and read rounds of a mode. */
export function describePlan(p: PoolModePlan): string {
  const mode = p.offload ? 'with offload' : 'without offload';
  const full = p.roundSize >= DEFAULT_RX_BATCH ? 'full rounds' : `full rounds of ${DEFAULT_RX_BATCH} need ${p.fullRoundSlots + 1} slots`;
  return (
    `frame pool ${mode}: ${describeBytes(p.bytes)} (${p.key} ${p.slots} × ${p.slotBytes / 1024} KiB), ` +
    `largest flood ${p.fanOut} copies, reserve ${p.reserve}, reads of up to ${p.roundSize} frame${p.roundSize === 1 ? '' : 's'} a round (${full})`
  );
}
