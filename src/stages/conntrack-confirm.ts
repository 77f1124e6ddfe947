/**
 * conntrack-confirm: which new conntrack entries stay. Linux creates an entry for a flow's
 * first packet at PREROUTING (or LOCAL_OUT) but inserts it in the table only when that packet
 * has passed POSTROUTING or LOCAL_IN (__nf_conntrack_confirm, the last hook function); an
 * entry whose packet was dropped on the way — TTL expired, no route, a full neighbour queue,
 * a NAT handler without a free port — is discarded with the packet.
 *
 * Here the table inserts at once (a second packet of the same batch must find the entry), so
 * the same rule is kept after the fact: conntrack-in lists every entry it creates in
 * `Unconfirmed`; ConntrackConfirm, the last handler at postrouting, input and bridge-ip4,
 * confirms the entry of each new packet that reaches it; after each dispatch, when every
 * queue of the graph is empty, `Unconfirmed.sweep` removes the entries left unconfirmed.
 * That is sound because no stage between conntrack-in and those hooks holds a frame across
 * dispatches (neighbour-output queues frames only after POSTROUTING; fragments wait in
 * ip4-reassemble before conntrack sees them). While the frames of one dispatch are in flight
 * ids are stable (the table reuses an id only after its next expire(), between dispatches).
 *
 * Should more entries be created in one dispatch than the list holds (four per pool slot),
 * the rest are simply kept, as confirmed ones are, until their timeout (counted `overflow`).
 */
import type { DropReason } from '../core/drop-reason.ts';
import { CtState } from '../core/frame-meta.ts';
import type { HookHandler } from '../core/hook.ts';
import type { FramePool } from '../core/frame-pool.ts';
import type { Conntrack } from '../tables/conntrack.ts';

export class Unconfirmed {
  /** Per entry id: 1 while its creating packet has not been confirmed. */
  private readonly pending: Uint8Array;
  private readonly list: Int32Array;
  private count = 0;
  /** Entries removed because their first packet was dropped before it was confirmed. */
  removed = 0;
  /** Entries the list had no room for (kept). */
  overflow = 0;

  constructor(
    private readonly ct: Conntrack,
    listCapacity: number,
  ) {
    this.pending = new Uint8Array(ct.idCapacity);
    this.list = new Int32Array(listCapacity);
  }

  /** conntrack-in created entry `id` for the packet it is tracking. */
  add(id: number): void {
    if (this.count === this.list.length) {
      this.overflow++;
      return;
    }
    this.pending[id] = 1;
    this.list[this.count++] = id;
  }

  /** The packet that created entry `id` reached POSTROUTING or LOCAL_IN: the entry stays. */
  confirm(id: number): void {
    this.pending[id] = 0;
  }

  /** Whether entry `id` waits for its packet to be confirmed. */
  isPending(id: number): boolean {
    return this.pending[id] === 1;
  }

  /** After a dispatch: removes the entries whose creating packet never got confirmed. */
  sweep(): void {
    const ct = this.ct;
    for (let k = 0; k < this.count; k++) {
      const id = this.list[k];
      if (this.pending[id] === 1) {
        this.pending[id] = 0;
        ct.remove(id);
        this.removed++;
      }
    }
    this.count = 0;
  }
}

/** The last handler at postrouting, input and bridge-ip4: confirms each new frame's entry. */
export class ConntrackConfirm implements HookHandler {
  readonly name = 'conntrack-confirm';
  // Linux's NF_IP_PRI_CONNTRACK_CONFIRM: INT_MAX.
  readonly priority = 0x7fffffff;
  readonly dropReasons: readonly DropReason[] = [];

  constructor(
    private readonly pool: FramePool,
    private readonly unconfirmed: Unconfirmed,
  ) {}

  process(slots: Int32Array, n: number): number {
    const pool = this.pool;
    for (let i = 0; i < n; i++) {
      const slot = slots[i];
      if (pool.ctState[slot] === CtState.NEW) this.unconfirmed.confirm(pool.ct[slot]);
    }
    return 0;
  }
}
