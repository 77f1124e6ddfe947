/**
 * ConntrackStore: the storage of connection tracking — entries on typed arrays, the tuple
 * index, ids, expiry and eviction when full. NatBindings (nat-binding.ts) adds the NAT
 * bindings of entries, Conntrack (conntrack.ts) the protocol state machines; read the
 * latter's header for the API as a whole.
 *
 * Refs. An entry `id` has two tuples, original (dir 0) and reply (dir 1), named by refs
 * `ref = id << 1 | dir`; both are in ONE hash index (conntrack-index.ts), so `lookup` finds
 * a packet's entry and direction in one probe run.
 *
 * Layout. An entry is two records, so a packet touches few cache lines (a random access
 * costs ~100 ns on the machines measured, and a table of 1,000,000 is far beyond any cache):
 *   rec (Int32Array, REC_STRIDE = 12 per entry, owned by the index):
 *     0-3 original tuple, 4-7 reply tuple (conntrack-index.ts),
 *     8 status (CT_* bits) | TCP state << 8 | TCP aux << 16,  9 service tag,  10-11 wheel links
 *   num (Float64Array, NUM_STRIDE = 6 per entry):
 *     0 deadline (µs), 1 first packet (µs), 2-3 packets, 4-5 bytes (original, reply)
 * Read them through the accessors (statusOf, tcpStateOf, serviceTagOf, deadlineOf, packetsOf...),
 * which V8 inlines.
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
 * A new entry's reply tuple is the inverse of its original, indexed at once when free;
 * when another entry's tuple equals it already (possible only where NAT is at work), the
 * entry lacks CT_REPLY_INDEXED until a NAT binding gives it a free one (nat-binding.ts).
 *
 * Bytes per entry (`bytesPerEntry`, measured in tests and the bench): rec 48, num 48, index
 * buckets 16 (16.8 at max = 1,000,000: 2^22 buckets): about 113, plus 1.6% for the reserve
 * ids and 0.5 MiB of wheel heads per table.
 *
 * Times never cross a call on the packet path (a double passed to, or returned from, a call
 * V8 did not inline is boxed: heap garbage per packet; which calls V8 inlines changes with
 * the caller): the present is the `nowUs` field, set by the dataplane before each batch;
 * timeouts are named by small integers (T_* rows); comparisons with deadlines are made
 * inside the store and return booleans (isExpired).
 */
import { TupleIndex } from './conntrack-index.ts';
import { ExpiryWheel } from './conntrack-wheel.ts';

/** The largest `max`: the index holds at most 2^22 ids, reserve included. */
export const MAX_CONNTRACK_ENTRIES = 4_000_000;

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

/** Status bits (`statusOf(id)`). */
export const CT_SEEN_REPLY = 1;
export const CT_ASSURED = 2;
export const CT_SNAT = 4;
export const CT_DNAT = 8;
/** The reply tuple is in the index (see the header). */
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
/** UDP: replied and active this long after its first packet makes a stream (Linux's stream_ts). */
export const UDP_STREAM_AFTER_US = 2_000_000;

/** Hears entries come, change and go (`conntrack -E`); gets entry ids. */
export interface ConntrackListener {
  /** Created. Its reply tuple may still change (NAT) until its first packet has left: read it after the batch. */
  onNew(id: number): void;
  /** A state changed, a reply was first seen, or the entry became ASSURED. */
  onUpdate(id: number): void;
  /** About to die (expired, evicted, removed, flushed): read it now. */
  onDestroy(id: number): void;
}

/**
 * A pending cleanup that has not yet reached every entry it will flush (the UDP cleanup of
 * Services, src/dataplane/udp-cleanup.ts): conntrack-in asks it about each UDP entry a packet
 * finds, and a stale one is flushed at once.
 */
export interface StaleEntries {
  isStale(id: number): boolean;
  /** Destroys stale entry `id` (and counts it). */
  flushAtLookup(id: number): void;
}

/** int32 words per entry in `rec`, and where the store's own words sit. */
export const REC_STRIDE = 12;
const R_FLAGS = 8;
const R_SERVICE_TAG = 9;
const R_LINKS = 10;
/** float64 words per entry in `num`. */
export const NUM_STRIDE = 6;
const N_DEADLINE = 0;
const N_START = 1;
const N_PACKETS = 2;
const N_BYTES = 4;

export class ConntrackStore {
  readonly max: number;
  /** Ids that exist: max plus the reserve that dying entries use. */
  readonly idCapacity: number;
  readonly index: TupleIndex;
  /** Int32 records, REC_STRIDE per entry (see the header). */
  protected readonly rec: Int32Array;
  /** Float64 records, NUM_STRIDE per entry (see the header). */
  protected readonly num: Float64Array;
  readonly wheel: ExpiryWheel;
  /** Timeouts in µs by row (TcpState or T_*); filled by the subclass. */
  protected readonly timeoutUs = new Float64Array(16);

  /** The table's clock (µs), set by the dataplane before each batch. */
  nowUs = 0;
  listener: ConntrackListener | null = null;
  /** Set while a cleanup walk is pending (see StaleEntries); null the rest of the time. */
  staleUdp: StaleEntries | null = null;
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
    this.index = new TupleIndex(n, hashSeed, REC_STRIDE);
    this.rec = this.index.rec;
    this.num = new Float64Array(n * NUM_STRIDE);
    this.wheel = new ExpiryWheel(this.rec, REC_STRIDE, R_LINKS, this.num, NUM_STRIDE, N_DEADLINE);
  }

  // ---------------------------------------------------------------------------------------
  // Reading an entry: tuples by ref (id << 1 | dir), the rest by id; addresses as int32

  srcOf(ref: number): number {
    return this.rec[this.index.tupleAt(ref)];
  }
  dstOf(ref: number): number {
    return this.rec[this.index.tupleAt(ref) + 1];
  }
  sportOf(ref: number): number {
    return this.rec[this.index.tupleAt(ref) + 2] >>> 16;
  }
  dportOf(ref: number): number {
    return this.rec[this.index.tupleAt(ref) + 2] & 0xffff;
  }
  protoOf(id: number): number {
    return this.rec[id * REC_STRIDE + 3] >>> 24;
  }
  /** CT_* bits; 0 for an id never used or freed. */
  statusOf(id: number): number {
    return this.rec[id * REC_STRIDE + R_FLAGS] & 0xff;
  }
  /** TcpState (conntrack-tcp.ts); 0 for other protocols. */
  tcpStateOf(id: number): number {
    return (this.rec[id * REC_STRIDE + R_FLAGS] >> 8) & 0xff;
  }
  /**
   * The Service code's int32 for the flow (its endpoint, whether to masquerade: service-table.ts);
   * 0 when new. Internal bookkeeping, not a connection mark: listings never show it.
   */
  serviceTagOf(id: number): number {
    return this.rec[id * REC_STRIDE + R_SERVICE_TAG];
  }
  setServiceTag(id: number, tag: number): void {
    this.rec[id * REC_STRIDE + R_SERVICE_TAG] = tag;
  }
  /** Whether the entry's deadline has come (a boolean: no double crosses the call). */
  isExpired(id: number): boolean {
    return this.num[id * NUM_STRIDE + N_DEADLINE] <= this.nowUs;
  }
  /** Whether more than `UDP_STREAM_AFTER_US` passed since the entry's first packet. */
  protected isPastStreamAge(id: number): boolean {
    return this.nowUs > this.num[id * NUM_STRIDE + N_START] + UDP_STREAM_AFTER_US;
  }
  /** When the entry expires (µs). For display: on the packet path, use isExpired. */
  deadlineOf(id: number): number {
    return this.num[id * NUM_STRIDE + N_DEADLINE];
  }
  /** When its first packet was seen (µs). For display. */
  startOf(id: number): number {
    return this.num[id * NUM_STRIDE + N_START];
  }
  /** Packets seen in ref's direction. */
  packetsOf(ref: number): number {
    return this.num[(ref >> 1) * NUM_STRIDE + N_PACKETS + (ref & 1)];
  }
  /** Bytes seen in ref's direction. */
  bytesOf(ref: number): number {
    return this.num[(ref >> 1) * NUM_STRIDE + N_BYTES + (ref & 1)];
  }

  /** Status, TCP state and TCP aux of `id` in one word (as the protocol steps keep them). */
  protected flagsOf(id: number): number {
    return this.rec[id * REC_STRIDE + R_FLAGS];
  }
  protected setFlags(id: number, flags: number): void {
    this.rec[id * REC_STRIDE + R_FLAGS] = flags;
  }
  protected setStatus(id: number, status: number): void {
    const o = id * REC_STRIDE + R_FLAGS;
    this.rec[o] = (this.rec[o] & ~0xff) | status;
  }
  /** Counts a packet of `bytes` in ref's direction. */
  protected account(ref: number, bytes: number): void {
    const o = (ref >> 1) * NUM_STRIDE + (ref & 1);
    this.num[o + N_PACKETS]++;
    this.num[o + N_BYTES] += bytes;
  }

  // ---------------------------------------------------------------------------------------
  // Lookup and creation

  /** The ref (id << 1 | dir) of the live entry holding this tuple, or -1. Destroys it if expired. */
  lookup(proto: number, src: number, dst: number, sport: number, dport: number): number {
    const ref = this.index.find(proto, src | 0, dst | 0, (sport << 16) | dport);
    if (ref < 0) return -1;
    const id = ref >> 1;
    if (this.isExpired(id)) {
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
      this.wheel.setNext(id, this.freeHead);
      this.freeHead = id;
      this.insertFailed++;
      return -1;
    }
    index.write(ref | 1, proto, dst, src, (dport << 16) | sport);
    const o = id * REC_STRIDE;
    this.rec[o + R_FLAGS] = (index.insert(ref | 1) ? CT_LIVE | CT_REPLY_INDEXED : CT_LIVE) | (aux << 16);
    this.rec[o + R_SERVICE_TAG] = 0;
    const num = this.num;
    const n = id * NUM_STRIDE;
    num[n + N_DEADLINE] = this.nowUs + this.timeoutUs[T_UDP];
    num[n + N_START] = this.nowUs;
    num[n + N_PACKETS] = 0;
    num[n + N_PACKETS + 1] = 0;
    num[n + N_BYTES] = 0;
    num[n + N_BYTES + 1] = 0;
    this.wheel.nowUs = this.nowUs;
    this.wheel.link(id);
    this.count++;
    this.created++;
    if (this.listener !== null) this.listener.onNew(id);
    return id;
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
    if ((this.statusOf(id) & CT_LIVE) !== 0) this.destroy(id, true);
  }

  /** Whether `id` is a live entry whose deadline has not passed. */
  isLive(id: number): boolean {
    return (this.statusOf(id) & CT_LIVE) !== 0 && !this.isExpired(id);
  }

  /** Bytes held by every array of the table. */
  get byteLength(): number {
    return this.index.bucketBytes + this.rec.byteLength + this.num.byteLength + this.wheel.byteLength + this.timeoutUs.byteLength;
  }

  /** byteLength / max: what one entry of capacity costs, index, reserve and wheel included. */
  get bytesPerEntry(): number {
    return this.byteLength / this.max;
  }

  /** Sets the deadline to now + timeoutUs[row]. (Small, so the packet loops inline it.) */
  protected refresh(id: number, row: number): void {
    const o = id * NUM_STRIDE + N_DEADLINE;
    const d = this.nowUs + this.timeoutUs[row];
    if (d < this.num[o]) this.refile(id, d);
    else this.num[o] = d;
  }

  /** Moves `id`'s deadline earlier, to `d`: the wheel files an entry no later than its deadline, so it is filed again. */
  private refile(id: number, d: number): void {
    this.num[id * NUM_STRIDE + N_DEADLINE] = d;
    this.wheel.unlink(id);
    this.wheel.link(id);
  }

  /** Takes a live entry out of the index (and the wheel, when `linked`); it is dying. */
  protected destroy(id: number, linked: boolean): void {
    if (this.listener !== null) this.listener.onDestroy(id);
    if (linked) this.wheel.unlink(id);
    const ref = id << 1;
    this.index.remove(ref);
    if ((this.statusOf(id) & CT_REPLY_INDEXED) !== 0) this.index.remove(ref | 1);
    this.setFlags(id, CT_DYING);
    this.wheel.setNext(id, this.dyingHead);
    this.dyingHead = id;
    this.count--;
  }

  // The free and dying lists are chained through the wheel's next link, unused while an id is unlinked.
  private allocId(): number {
    const id = this.freeHead;
    if (id >= 0) {
      this.freeHead = this.wheel.next(id);
      return id;
    }
    return this.highWater < this.idCapacity ? this.highWater++ : -1;
  }

  private releaseDying(): void {
    const wheel = this.wheel;
    let id = this.dyingHead;
    while (id >= 0) {
      const after = wheel.next(id);
      this.setFlags(id, 0);
      wheel.setNext(id, this.freeHead);
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
      if (this.isExpired(id)) {
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
      id = this.wheel.next(id);
    }
    return false;
  }

  /** Destroys `id` when it has expired or is not ASSURED; says whether it did. */
  private evictable(id: number): boolean {
    if (this.isExpired(id)) {
      this.destroy(id, true);
      this.expired++;
      return true;
    }
    if ((this.statusOf(id) & CT_ASSURED) === 0) {
      this.destroy(id, true);
      this.earlyDrop++;
      return true;
    }
    return false;
  }
}
