/**
 * NeighbourTable: IPv4 → MAC per router interface, with Linux's neighbour states (`ip neigh`).
 *
 *   INCOMPLETE  resolution under way; packets wait in a small per-entry queue
 *   REACHABLE   confirmed recently (within reachableUs)
 *   STALE       usable, but unconfirmed; the next use starts DELAY
 *   DELAY       used while stale; if nothing confirms it within delayUs, PROBE
 *   PROBE       unicast requests are being sent to confirm it
 *   FAILED      resolution failed; queued packets were answered with host unreachable
 *   PERMANENT   static, from config
 *
 * The table only holds state and deadlines; the neighbour stage sends the requests and the
 * ICMP errors, so tables never build packets. Keys are (interface, IPv4 address).
 *
 * Full table: a new entry first collects unused ones (`collect`, a scan of the table). A
 * collection that frees nothing is not tried again for a second — Linux's forced garbage
 * collection likewise runs at most every few seconds below the hard limit — so packets to a
 * flood of new neighbours are refused at O(1) each, not a scan each.
 */
import { KeyIndex } from './key-index.ts';

/** How long a full table waits after a collection that freed nothing. */
const COLLECT_BACKOFF_US = 1_000_000;

export const enum NeighState {
  NONE = 0,
  INCOMPLETE = 1,
  REACHABLE = 2,
  STALE = 3,
  DELAY = 4,
  PROBE = 5,
  FAILED = 6,
  PERMANENT = 7,
}

export const NEIGH_STATE_NAMES = ['NONE', 'INCOMPLETE', 'REACHABLE', 'STALE', 'DELAY', 'PROBE', 'FAILED', 'PERMANENT'];

export interface NeighbourTimers {
  /** Requests sent before giving up (Linux mcast_solicit / ucast_solicit). */
  probes: number;
  /** Time between requests (retrans_time). */
  retransUs: number;
  /** How long a confirmation keeps an entry REACHABLE (base_reachable_time). */
  reachableUs: number;
  /** DELAY before probing a stale entry in use (delay_first_probe_time). */
  delayUs: number;
  /** Unused STALE/FAILED entries older than this may be collected (gc_stale_time). */
  gcStaleUs: number;
  /** Packets that may wait for one resolution (unres_qlen). */
  queueLen: number;
  /**
   * How long a FAILED entry answers new packets with host unreachable at once before a new
   * packet starts another resolution. Linux restarts at once (0); a short hold keeps a dead
   * neighbour from being asked three times for every packet sent to it.
   */
  failedHoldUs: number;
}

export const DEFAULT_NEIGHBOUR_TIMERS: NeighbourTimers = {
  probes: 3,
  retransUs: 1_000_000,
  reachableUs: 30_000_000,
  delayUs: 5_000_000,
  gcStaleUs: 60_000_000,
  queueLen: 3,
  failedHoldUs: 1_000_000,
};

export class NeighbourTable {
  private readonly index: KeyIndex;
  readonly macHi: Uint32Array;
  /** Low 32 MAC bits as int32, as macLoAt reads them from frames. */
  readonly macLo: Int32Array;
  readonly state: Uint8Array;
  /** When the entry was last confirmed (or created). */
  readonly confirmedUs: Float64Array;
  /** When the entry was last used to send. */
  readonly usedUs: Float64Array;
  /** When resolution last failed. */
  readonly failedUs: Float64Array;
  /** When its timer fires (INCOMPLETE, REACHABLE, DELAY, PROBE); 0 when none. */
  readonly deadlineUs: Float64Array;
  readonly probesSent: Uint8Array;
  /** Waiting packets: queueLen slots per entry. */
  readonly queue: Int32Array;
  readonly queued: Uint8Array;
  readonly timers: NeighbourTimers;
  private minDeadline = Infinity;
  full = 0;
  /** Collections run (each a scan of the table). */
  collections = 0;
  /** Moves on with every entry created or removed (ids are reused): what a cache of `find` compares with. */
  version = 0;
  /** A full table does not collect again before this (µs): the last collection freed nothing. */
  private nextCollectUs = -Infinity;

  constructor(capacity = 1024, timers: NeighbourTimers = DEFAULT_NEIGHBOUR_TIMERS) {
    this.index = new KeyIndex(capacity);
    // A copy: a reload retunes it in place (queueLen excepted, which sizes the queues).
    this.timers = { ...timers };
    this.macHi = new Uint32Array(capacity);
    this.macLo = new Int32Array(capacity);
    this.state = new Uint8Array(capacity);
    this.confirmedUs = new Float64Array(capacity);
    this.usedUs = new Float64Array(capacity);
    this.failedUs = new Float64Array(capacity);
    this.deadlineUs = new Float64Array(capacity);
    this.probesSent = new Uint8Array(capacity);
    this.queue = new Int32Array(capacity * timers.queueLen);
    this.queued = new Uint8Array(capacity);
  }

  get capacity(): number {
    return this.index.capacity;
  }

  get size(): number {
    return this.index.size;
  }

  find(ifIndex: number, ip: number): number {
    return this.index.find(ifIndex, ip);
  }

  ifIndexOf(id: number): number {
    return this.index.k1[id];
  }

  ipOf(id: number): number {
    return this.index.k2[id] >>> 0;
  }

  /** Creates an entry in state NONE (or returns the existing one); -1 when the table is full of live entries. */
  create(ifIndex: number, ip: number, nowUs: number): number {
    let id = this.index.find(ifIndex, ip);
    if (id >= 0) return id;
    id = this.index.insert(ifIndex, ip);
    if (id < 0) {
      if (nowUs >= this.nextCollectUs) {
        if (this.collect(nowUs) === 0) this.nextCollectUs = nowUs + COLLECT_BACKOFF_US;
        id = this.index.insert(ifIndex, ip);
      }
      if (id < 0) {
        this.full++;
        return -1;
      }
    }
    this.version++;
    this.state[id] = NeighState.NONE;
    this.macHi[id] = 0;
    this.macLo[id] = 0;
    this.confirmedUs[id] = nowUs;
    this.usedUs[id] = nowUs;
    this.deadlineUs[id] = 0;
    this.probesSent[id] = 0;
    this.queued[id] = 0;
    return id;
  }

  /** Records a link-layer address and moves the entry to `state`. */
  update(id: number, macHi: number, macLo: number, state: NeighState, nowUs: number): void {
    this.macHi[id] = macHi;
    this.macLo[id] = macLo | 0;
    this.state[id] = state;
    this.confirmedUs[id] = nowUs;
    this.deadlineUs[id] = 0;
    this.probesSent[id] = 0;
  }

  setDeadline(id: number, us: number): void {
    this.deadlineUs[id] = us;
    if (us < this.minDeadline) this.minDeadline = us;
  }

  /** The earliest pending timer, or Infinity. */
  nextDeadline(): number {
    return this.minDeadline;
  }

  /**
   * Calls `fire(id)` for each entry whose timer is due at `nowUs` (after clearing its
   * deadline; `fire` may set a new one), then recomputes the earliest deadline.
   */
  runDue(nowUs: number, fire: (id: number) => void): void {
    if (nowUs < this.minDeadline) return;
    const idx = this.index;
    let next = Infinity;
    for (let id = 0; id < idx.capacity; id++) {
      if (!idx.used[id]) continue;
      const d = this.deadlineUs[id];
      if (d === 0) continue;
      if (d <= nowUs) {
        this.deadlineUs[id] = 0;
        fire(id);
      }
      const after = this.deadlineUs[id];
      if (after !== 0 && after < next) next = after;
    }
    this.minDeadline = next;
  }

  /** Adds a waiting packet; returns the slot pushed out to make room (oldest), or -1. */
  enqueue(id: number, slot: number): number {
    const qlen = this.timers.queueLen;
    if (qlen === 0) return slot;
    const base = id * qlen;
    const n = this.queued[id];
    if (n < qlen) {
      this.queue[base + n] = slot;
      this.queued[id] = n + 1;
      return -1;
    }
    const oldest = this.queue[base];
    for (let i = 1; i < qlen; i++) this.queue[base + i - 1] = this.queue[base + i];
    this.queue[base + qlen - 1] = slot;
    return oldest;
  }

  /** Empties the entry's queue through `take(slot)`, oldest first. */
  drain(id: number, take: (slot: number) => void): void {
    const n = this.queued[id];
    const base = id * this.timers.queueLen;
    this.queued[id] = 0;
    for (let i = 0; i < n; i++) take(this.queue[base + i]);
  }

  remove(id: number): void {
    this.index.remove(id);
    this.version++;
  }

  /** Frees entries that are FAILED, or STALE and unused for gcStaleUs, and have nothing queued. */
  collect(nowUs: number): number {
    const idx = this.index;
    let removed = 0;
    this.collections++;
    for (let id = 0; id < idx.capacity; id++) {
      if (!idx.used[id] || this.queued[id] > 0) continue;
      const s = this.state[id];
      if (s === NeighState.FAILED || s === NeighState.NONE || (s === NeighState.STALE && nowUs - this.usedUs[id] > this.timers.gcStaleUs)) {
        idx.remove(id);
        removed++;
      }
    }
    if (removed > 0) this.version++;
    return removed;
  }

  /** Every entry id in use, for display. */
  *ids(): Generator<number> {
    for (let id = 0; id < this.index.capacity; id++) if (this.index.used[id]) yield id;
  }
}
