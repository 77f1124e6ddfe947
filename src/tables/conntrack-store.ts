/**
 * ConntrackStore: the storage of connection tracking — entries on typed arrays, the tuple
 * index, ids, expiry, eviction when full and NAT bindings. Conntrack (conntrack.ts) adds the
 * protocol state machines on top; read its header for the API as a whole.
 *
 * Refs. An entry `id` has two tuples, original (dir 0) and reply (dir 1), named by refs
 * `ref = id << 1 | dir`; both are in ONE hash index (conntrack-index.ts), so `lookup` finds
 * a packet's entry and direction in one probe run. Per-direction arrays (packets, bytes) are
 * indexed by ref, per-entry arrays by id.
 *
 * Ids. `create` takes an id from a free list (or one never used: untouched pages of the
 * arrays stay unbacked, so memory follows the peak number of entries). A destroyed entry is
 * *dying* until the next `expire` call: out of the index and the wheel, but its tuples stay
 * readable and its id is not reused, so frames of a batch may carry ids while entries die
 * under them. A reserve of max/64 + 256 ids beyond `max` holds the dying.
 *
 * Expiry. Each entry has a deadline (µs); `refresh` moves it. A lookup that finds an entry
 * past its deadline destroys it and misses: expiry is exact to the clock. Reclamation is
 * lazy and bounded: `expire(nowUs, budget)` destroys at most `budget` due entries that the
 * timer wheel (conntrack-wheel.ts) hands out; `nextDeadline()` says when it next has work.
 *
 * Full table. `create` reclaims due entries (bounded), then evicts one that is not ASSURED
 * from the new tuple's hash neighbourhood (64 buckets) or the oldest wheel slot (64 entries),
 * as Linux's early_drop looks at a few buckets, never the table (counted `earlyDrop`); else
 * it refuses (counted `drop`). An ASSURED entry is never evicted.
 *
 * NAT bindings. setReply / bindSnat / bindDnat give an entry a new reply tuple and re-index
 * it in one step, or refuse (false, nothing changed) when another tuple equals it. A new
 * entry's reply tuple is the inverse of its original, indexed at once when free; when
 * another entry's tuple equals it already (possible only where NAT is at work), the entry
 * lacks CT_REPLY_INDEXED until a binding gives it a free one: the stage at POSTROUTING should
 * then allocate a source port even without a NAT rule, as Linux's null binding does.
 *
 * Bytes per entry (`bytesPerEntry`, measured in tests and the bench): tuples 32, index
 * buckets 16 (16.8 at max = 1,000,000: 2^22 buckets), deadline 8, first-packet time 8,
 * packets 2×8, bytes 2×8, mark 4, wheel links 8, status/state/aux 3; about 113, plus 1.6%
 * for the reserve ids and 0.5 MiB of wheel heads per table.
 *
 * Times never cross a call as arguments on the packet path (a double passed to a call V8
 * did not inline is boxed: heap garbage per packet): the present is the `nowUs` field, set
 * by the dataplane before each batch; timeouts are named by small integers (T_* rows).
 */
import { TupleIndex } from './conntrack-index.ts';
import { ExpiryWheel } from './conntrack-wheel.ts';

/** The largest `max`: the index holds at most 2^22 ids, reserve included. */
export const MAX_CONNTRACK_ENTRIES = 4_000_000;

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

/** Status bits (`status[id]`). */
export const CT_SEEN_REPLY = 1;
export const CT_ASSURED = 2;
export const CT_SNAT = 4;
export const CT_DNAT = 8;
/** The reply tuple is in the index (see NAT bindings in the header). */
export const CT_REPLY_INDEXED = 16;
/** UDP: replied and active past 2 s, so it has the stream timeout. */
export const CT_UDP_STREAM = 32;
export const CT_LIVE = 64;
export const CT_DYING = 128;

// Rows of timeoutUs: 0-9 the TCP states (TcpState), then these.
export const T_UDP = 10;
export const T_UDP_STREAM = 11;
export const T_ICMP = 12;
/** Zero: the entry dies at once. */
export const T_NOW = 13;

const EARLY_DROP_SCAN = 64;

/** Hears entries come, change and go (`conntrack -E`); gets entry ids. */
export interface ConntrackListener {
  /** Created. Its reply tuple may still change (NAT) until its first packet has left: read it after the batch. */
  onNew(id: number): void;
  /** A state changed, a reply was first seen, or the entry became ASSURED. */
  onUpdate(id: number): void;
  /** About to die (expired, evicted, removed, flushed): read it now. */
  onDestroy(id: number): void;
}

export class ConntrackStore {
  readonly max: number;
  /** Ids that exist: max plus the reserve that dying entries use. */
  readonly idCapacity: number;
  readonly index: TupleIndex;
  /** Four int32 per ref (see conntrack-index.ts); read with srcOf and friends. */
  readonly tuples: Int32Array;
  readonly wheel: ExpiryWheel;
  readonly status: Uint8Array;
  /** TCP state (TcpState); 0 for other protocols. */
  readonly state: Uint8Array;
  /** TCP: per-entry memory of tcpStep (conntrack-tcp.ts). */
  protected readonly aux: Uint8Array;
  readonly deadlineUs: Float64Array;
  /** When the entry's first packet was seen. */
  readonly startUs: Float64Array;
  /** Per ref: packets and bytes seen in that direction. */
  readonly packets: Float64Array;
  readonly bytes: Float64Array;
  /** A spare int32 per entry for the NAT stages (Service and endpoint, say); 0 when new. */
  readonly mark: Int32Array;
  /** Timeouts in µs by row (TcpState or T_*); filled by the subclass. */
  protected readonly timeoutUs = new Float64Array(16);

  /** The table's clock (µs), set by the dataplane before each batch. */
  nowUs = 0;
  listener: ConntrackListener | null = null;
  /** Live entries. */
  count = 0;
  /** Ids below this have been used at least once. */
  highWater = 0;
  private freeHead = -1;
  private dyingHead = -1;

  // Statistics, as `conntrack -S` names them (see conntrackStats in conntrack-views.ts).
  found = 0;
  created = 0;
  invalid = 0;
  insertFailed = 0;
  drop = 0;
  earlyDrop = 0;
  expired = 0;

  constructor(max: number, hashSeed?: number) {
    max = Math.floor(max);
    if (!(max >= 1 && max <= MAX_CONNTRACK_ENTRIES)) throw new RangeError(`conntrack: max must be 1 .. ${MAX_CONNTRACK_ENTRIES}`);
    this.max = max;
    const n = max + Math.floor(max / 64) + 256;
    this.idCapacity = n;
    this.index = new TupleIndex(n, hashSeed);
    this.tuples = this.index.tuples;
    this.deadlineUs = new Float64Array(n);
    this.wheel = new ExpiryWheel(n, this.deadlineUs);
    this.status = new Uint8Array(n);
    this.state = new Uint8Array(n);
    this.aux = new Uint8Array(n);
    this.startUs = new Float64Array(n);
    this.packets = new Float64Array(2 * n);
    this.bytes = new Float64Array(2 * n);
    this.mark = new Int32Array(n);
  }

  // ---------------------------------------------------------------------------------------
  // Tuples of a ref (id << 1 | dir); addresses as int32 (`>>> 0` for display)

  srcOf(ref: number): number {
    return this.tuples[ref << 2];
  }
  dstOf(ref: number): number {
    return this.tuples[(ref << 2) + 1];
  }
  sportOf(ref: number): number {
    return this.tuples[(ref << 2) + 2] >>> 16;
  }
  dportOf(ref: number): number {
    return this.tuples[(ref << 2) + 2] & 0xffff;
  }
  protoOf(id: number): number {
    return this.tuples[(id << 3) + 3] >>> 24;
  }

  // ---------------------------------------------------------------------------------------
  // Lookup and creation

  /** The ref (id << 1 | dir) of the live entry holding this tuple, or -1. Destroys it if expired. */
  lookup(proto: number, src: number, dst: number, sport: number, dport: number): number {
    const ref = this.index.find(proto, src | 0, dst | 0, (sport << 16) | dport);
    if (ref < 0) return -1;
    const id = ref >> 1;
    if (this.deadlineUs[id] <= this.nowUs) {
      this.destroy(id, true);
      this.expired++;
      return -1;
    }
    this.found++;
    return ref;
  }

  /**
   * A new entry for a tuple `lookup` missed, its reply tuple the inverse; `aux` is its first
   * protocol byte. Returns the id, or -1: full and nothing evictable (`drop`), or the tuple is
   * present (`insertFailed`). The entry lives as unreplied UDP until a packet method refreshes it.
   */
  protected createEntry(proto: number, src: number, dst: number, sport: number, dport: number, aux: number): number {
    src |= 0;
    dst |= 0;
    const ports = (sport << 16) | dport;
    if (this.count >= this.max && !this.makeRoom(proto, src, dst, ports)) {
      this.drop++;
      return -1;
    }
    const id = this.allocId();
    if (id < 0) {
      this.drop++;
      return -1;
    }
    const ref = id << 1;
    const index = this.index;
    index.write(ref, proto, src, dst, ports);
    if (!index.insert(ref)) {
      this.wheel.next[id] = this.freeHead;
      this.freeHead = id;
      this.insertFailed++;
      return -1;
    }
    index.write(ref | 1, proto, dst, src, (dport << 16) | sport);
    this.status[id] = index.insert(ref | 1) ? CT_LIVE | CT_REPLY_INDEXED : CT_LIVE;
    this.state[id] = 0;
    this.aux[id] = aux;
    this.mark[id] = 0;
    this.packets[ref] = 0;
    this.packets[ref | 1] = 0;
    this.bytes[ref] = 0;
    this.bytes[ref | 1] = 0;
    this.startUs[id] = this.nowUs;
    this.deadlineUs[id] = this.nowUs + this.timeoutUs[T_UDP];
    this.wheel.nowUs = this.nowUs;
    this.wheel.link(id);
    this.count++;
    this.created++;
    if (this.listener !== null) this.listener.onNew(id);
    return id;
  }

  // ---------------------------------------------------------------------------------------
  // NAT bindings

  /** Whether no tuple but `id`'s own reply equals this one (so its reply could take it). */
  isReplyFree(id: number, src: number, dst: number, sport: number, dport: number): boolean {
    const ref = this.index.find(this.protoOf(id), src | 0, dst | 0, (sport << 16) | dport);
    return ref < 0 || ref === ((id << 1) | 1);
  }

  /** Gives entry `id` this reply tuple, re-indexed in one step; false (no change) when taken. */
  setReply(id: number, src: number, dst: number, sport: number, dport: number): boolean {
    const rref = (id << 1) | 1;
    const proto = this.protoOf(id);
    const ports = (sport << 16) | dport;
    const index = this.index;
    const found = index.find(proto, src | 0, dst | 0, ports);
    if (found === rref) return true;
    if (found >= 0) return false;
    if ((this.status[id] & CT_REPLY_INDEXED) !== 0) index.remove(rref);
    index.write(rref, proto, src | 0, dst | 0, ports);
    index.insert(rref);
    this.status[id] |= CT_REPLY_INDEXED;
    return true;
  }

  /**
   * Source NAT: the original direction leaves from (newSrc, newPort), so replies come back
   * to it (ICMP echo: newPort is the new identifier). False when that reply tuple is taken.
   */
  bindSnat(id: number, newSrc: number, newPort: number): boolean {
    const rref = (id << 1) | 1;
    const icmp = this.protoOf(id) === IPPROTO_ICMP;
    if (!this.setReply(id, this.srcOf(rref), newSrc, icmp ? newPort : this.sportOf(rref), newPort)) return false;
    this.status[id] |= CT_SNAT;
    return true;
  }

  /** Destination NAT: the original direction goes to (newDst, newPort); false when taken. ICMP keeps its identifier. */
  bindDnat(id: number, newDst: number, newPort: number): boolean {
    const rref = (id << 1) | 1;
    const icmp = this.protoOf(id) === IPPROTO_ICMP;
    if (!this.setReply(id, newDst, this.dstOf(rref), icmp ? this.sportOf(rref) : newPort, this.dportOf(rref))) return false;
    this.status[id] |= CT_DNAT;
    return true;
  }

  // ---------------------------------------------------------------------------------------
  // Expiry and removal

  /**
   * Frees the ids of entries that died since the last call, then destroys at most `budget`
   * entries whose deadline has passed; returns how many. Call between batches.
   */
  expire(nowUs: number, budget: number): number {
    this.nowUs = nowUs;
    this.releaseDying();
    return this.reap(budget);
  }

  /** When `expire` next has work (µs), or Infinity: the end of the wheel's earliest busy second. */
  nextDeadline(): number {
    return this.wheel.nextDeadline();
  }

  /** Destroys a live entry; its id is reused only after the next `expire`. */
  remove(id: number): void {
    if ((this.status[id] & CT_LIVE) !== 0) this.destroy(id, true);
  }

  /** Whether `id` is a live entry whose deadline has not passed. */
  isLive(id: number): boolean {
    return (this.status[id] & CT_LIVE) !== 0 && this.deadlineUs[id] > this.nowUs;
  }

  /** Bytes held by every array of the table. */
  get byteLength(): number {
    let n = this.index.bucketBytes + this.tuples.byteLength + this.wheel.byteLength + this.timeoutUs.byteLength;
    for (const a of [this.status, this.state, this.aux, this.deadlineUs, this.startUs, this.packets, this.bytes, this.mark]) n += a.byteLength;
    return n;
  }

  /** byteLength / max: what one entry of capacity costs, index, reserve and wheel included. */
  get bytesPerEntry(): number {
    return this.byteLength / this.max;
  }

  /** Sets the deadline to now + timeoutUs[row]. */
  protected refresh(id: number, row: number): void {
    const old = this.deadlineUs[id];
    const d = this.nowUs + this.timeoutUs[row];
    this.deadlineUs[id] = d;
    // The wheel files an entry no later than its deadline: one moved earlier is filed again.
    if (d < old) {
      this.wheel.unlink(id);
      this.wheel.link(id);
    }
  }

  /** Takes a live entry out of the index (and the wheel, when `linked`); it is dying. */
  protected destroy(id: number, linked: boolean): void {
    if (this.listener !== null) this.listener.onDestroy(id);
    if (linked) this.wheel.unlink(id);
    const ref = id << 1;
    this.index.remove(ref);
    if ((this.status[id] & CT_REPLY_INDEXED) !== 0) this.index.remove(ref | 1);
    this.status[id] = CT_DYING;
    this.wheel.next[id] = this.dyingHead;
    this.dyingHead = id;
    this.count--;
  }

  // The free and dying lists are chained through wheel.next, unused while an id is unlinked.
  private allocId(): number {
    const id = this.freeHead;
    if (id >= 0) {
      this.freeHead = this.wheel.next[id];
      return id;
    }
    return this.highWater < this.idCapacity ? this.highWater++ : -1;
  }

  private releaseDying(): void {
    const next = this.wheel.next;
    let id = this.dyingHead;
    while (id >= 0) {
      const after = next[id];
      this.status[id] = 0;
      next[id] = this.freeHead;
      this.freeHead = id;
      id = after;
    }
    this.dyingHead = -1;
  }

  /** Destroys at most `budget` entries the wheel hands out as due now. */
  private reap(budget: number): number {
    const wheel = this.wheel;
    wheel.nowUs = this.nowUs;
    let removed = 0;
    for (let work = 0; work < budget; work++) {
      const id = wheel.popDue();
      if (id < 0) break;
      if (this.deadlineUs[id] <= this.nowUs) {
        this.destroy(id, false);
        this.expired++;
        removed++;
      } else {
        wheel.link(id);
      }
    }
    return removed;
  }

  /** Frees one entry for a new tuple when full: due, then not ASSURED; false when none. */
  private makeRoom(proto: number, src: number, dst: number, ports: number): boolean {
    this.reap(EARLY_DROP_SCAN);
    if (this.count < this.max) return true;
    const home = this.index.homeOf(proto, src, dst, ports);
    for (let i = 0; i < EARLY_DROP_SCAN; i++) {
      const ref = this.index.refAt(home + i);
      if (ref >= 0 && this.evictable(ref >> 1)) return true;
    }
    let id = this.wheel.earliest();
    for (let i = 0; i < EARLY_DROP_SCAN && id >= 0; i++) {
      if (this.evictable(id)) return true;
      id = this.wheel.next[id];
    }
    return false;
  }

  /** Destroys `id` when it has expired or is not ASSURED; says whether it did. */
  private evictable(id: number): boolean {
    if (this.deadlineUs[id] <= this.nowUs) {
      this.destroy(id, true);
      this.expired++;
      return true;
    }
    if ((this.status[id] & CT_ASSURED) === 0) {
      this.destroy(id, true);
      this.earlyDrop++;
      return true;
    }
    return false;
  }
}
