/**
 * RxBudget: how many pool slots a device read may take, shared by every port of a dataplane.
 *
 * Ports do not own receive buffers. When a TAP is readable its port takes free slots from
 * the pool for one read round, the frames read go into the graph, and the slots that got no
 * frame go straight back; after the graph has run, every slot of that round is free again
 * unless a stage holds its frame (a packet waiting for ARP, a fragment being reassembled). So
 * receive memory is the pool, whatever the number of ports, and an idle port holds nothing.
 *
 * A round must leave room for what its frames turn into: a broadcast or unknown unicast on a
 * bridge becomes one copy per member port (plus the router's), and any frame may cause an
 * ICMP error, an ARP request or fragments. So a round takes at most
 *
 *     min(batch, ⌊(available − reserve) / fanOut⌋), at least 1 while available > reserve
 *
 * where fanOut is the most copies one frame can become (the largest bridge's members, plus
 * one for its router interface) and reserve = 64 + fanOut is never lent: room for one
 * frame's flood and for what 64 frames may cause besides. Every frame of a round can then be
 * flooded and still find slots. When a stage holds so many frames that nothing is left above
 * the reserve, the port reads into the drain slot instead, and counts what it drops there
 * (`rxNoBuffer`), so the device does not fill up unseen and every port loses alike.
 *
 * `requirement()` is the same arithmetic for `nodeplane check` and the docs. Ports added or
 * removed at run time change the largest flood: `refresh()` works fan-out and reserve out
 * again (live-ports.ts calls it after each change).
 */
import type { FramePool } from '../core/frame-pool.ts';
import type { PortTable } from '../tables/port-table.ts';

/** Slots kept for what a 64-frame round may cause besides floods (ICMP errors, ARP requests, fragments). */
export const RX_RESERVE_BASE = 64;

/** The most copies one received frame can become: the largest bridge's member ports, plus its router interface. */
export function floodFanOut(ports: PortTable): number {
  let most = 1;
  for (const b of ports.bridges) {
    const n = b.members.length + (b.ifIndex >= 0 ? 1 : 0);
    if (n > most) most = n;
  }
  return most;
}

/** What a pool of `capacity` slots gives a dataplane whose largest flood is `fanOut` copies. */
export interface RxRequirement {
  fanOut: number;
  /** Slots never lent to a read: RX_RESERVE_BASE + fanOut, at most half the pool. */
  reserve: number;
  /** Frames a read round takes from a full pool (at most `batch`). */
  roundSize: number;
  /** Slots the pool needs for one frame and its flood above the reserve. */
  minimumSlots: number;
  /** Slots the pool needs for full rounds of `batch` frames, each flooded. */
  fullRoundSlots: number;
}

/** The budget of a pool with `capacity` slots to lend (the drain slot not counted). */
export function requirement(capacity: number, fanOut: number, batch: number): RxRequirement {
  const wanted = RX_RESERVE_BASE + fanOut;
  const reserve = Math.min(wanted, capacity >> 1);
  return {
    fanOut,
    reserve,
    roundSize: roundSize(capacity, reserve, fanOut, batch),
    minimumSlots: wanted + fanOut,
    fullRoundSlots: wanted + batch * fanOut,
  };
}

function roundSize(available: number, reserve: number, fanOut: number, batch: number): number {
  const above = available - reserve;
  if (above <= 0) return 0;
  const n = Math.floor(above / fanOut);
  return n < 1 ? 1 : n < batch ? n : batch;
}

export class RxBudget {
  fanOut: number;
  reserve: number;
  /**
   * A slot that is never a frame: reads land here when no slot can be lent, and the frame
   * is dropped and counted. One for all ports, since a read and its drop are one call.
   */
  readonly drainSlot: number;

  constructor(
    private readonly pool: FramePool,
    private readonly ports: PortTable,
  ) {
    const slot = pool.alloc();
    if (slot < 0) throw new Error('frame pool exhausted while opening ports');
    this.drainSlot = slot;
    this.fanOut = floodFanOut(ports);
    this.reserve = requirement(pool.capacity - 1, this.fanOut, 1).reserve;
  }

  /** Works the largest flood and the reserve out again, after ports were added or removed. */
  refresh(): void {
    this.fanOut = floodFanOut(this.ports);
    this.reserve = requirement(this.pool.capacity - 1, this.fanOut, 1).reserve;
  }

  /** Slots the next read round may take, at most `batch`; 0 when the pool is down to the reserve. */
  roundSize(batch: number): number {
    return roundSize(this.pool.available, this.reserve, this.fanOut, batch);
  }
}
