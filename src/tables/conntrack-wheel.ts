/**
 * ExpiryWheel: when conntrack entries time out, without ever scanning the table.
 *
 * A hashed timer wheel of one-second slots (2^17 of them, 36 h) whose lists are doubly
 * linked through two Int32Arrays indexed by entry id. An entry is *filed* in the slot of a
 * deadline no later than its real one; refreshing an entry on the packet path only writes
 * its later deadline (the caller's Float64Array) and does not touch the wheel. When a
 * slot's second has fully passed, its list is taken whole (`popDue` hands its entries out
 * one at a time): an entry whose deadline has come is the caller's to destroy, any other
 * (refreshed since, or filed beyond the wheel's span) is filed again at its real deadline.
 * A caller that moves a deadline *earlier* must file the entry again (unlink, link).
 *
 * A bitmap of non-empty slots finds the next due slot in at most 2^12 word reads, so
 * `nextDeadline()` (replay's next timer instant) and a jump of the clock over empty hours
 * cost little. nextDeadline() is the end of the earliest non-empty slot: a timer run then
 * reclaims everything filed there, so a million entries cost one wake-up per second of
 * clock, not one per entry; reclamation is up to one second late, expiry itself is exact
 * because lookups compare deadlines.
 *
 * List heads: slots 0..SLOTS-1, and one more, PENDING, holding the rest of a slot being
 * handed out. A prev link < 0 marks a head: -1 - (its slot).
 *
 * Times never cross a call as arguments (a double passed to a call V8 does not inline is
 * boxed): deadlines are read from the owner's Float64Array, the present from the `nowUs` field.
 */

const SLOT_BITS = 17;
export const WHEEL_SLOTS = 1 << SLOT_BITS;
const SLOT_MASK = WHEEL_SLOTS - 1;
const PENDING = WHEEL_SLOTS;
/** Slot width in µs. */
export const WHEEL_GRANULARITY_US = 1_000_000;

export class ExpiryWheel {
  private readonly heads: Int32Array;
  private readonly occupied: Int32Array;
  /** Absolute slot (deadline / granularity) handed out next; every earlier one is done. */
  private cursor = -1;
  /** Entries linked, in slots or in PENDING. */
  linked = 0;
  /** Cached nextDeadline(), or -1 when it must be recomputed. */
  private cachedNext = -1;
  /** The present (µs), set by the owner before link and popDue. */
  nowUs = 0;
  // The owner's arrays: links at rec[id * stride + nextAt] and [+ nextAt + 1], deadline at
  // num[id * numStride + deadlineAt].
  private readonly rec: Int32Array;
  private readonly stride: number;
  private readonly nextAt: number;
  private readonly num: Float64Array;
  private readonly numStride: number;
  private readonly deadlineAt: number;

  constructor(rec: Int32Array, stride: number, nextAt: number, num: Float64Array, numStride: number, deadlineAt: number) {
    this.rec = rec;
    this.stride = stride;
    this.nextAt = nextAt;
    this.num = num;
    this.numStride = numStride;
    this.deadlineAt = deadlineAt;
    this.heads = new Int32Array(WHEEL_SLOTS + 1).fill(-1);
    this.occupied = new Int32Array(WHEEL_SLOTS >> 5);
  }

  /** Bytes held by the wheel's own arrays (the links are in the owner's records). */
  get byteLength(): number {
    return this.heads.byteLength + this.occupied.byteLength;
  }

  /** The entry after `id` in its list, or -1. Free for the owner's use while `id` is not linked. */
  next(id: number): number {
    return this.rec[id * this.stride + this.nextAt];
  }

  setNext(id: number, n: number): void {
    this.rec[id * this.stride + this.nextAt] = n;
  }

  private prev(id: number): number {
    return this.rec[id * this.stride + this.nextAt + 1];
  }

  private setPrev(id: number, p: number): void {
    this.rec[id * this.stride + this.nextAt + 1] = p;
  }

  /** Files `id` in the slot of its deadline (never before the slot being handed out); `nowUs` must be set. */
  link(id: number): void {
    let abs = Math.floor(this.num[id * this.numStride + this.deadlineAt] / WHEEL_GRANULARITY_US);
    // The cursor starts at the present: a deadline filed later may well be earlier than this one.
    if (this.cursor < 0) this.cursor = Math.floor(this.nowUs / WHEEL_GRANULARITY_US);
    if (abs < this.cursor) abs = this.cursor;
    const slot = abs & SLOT_MASK;
    const head = this.heads[slot];
    this.setNext(id, head);
    this.setPrev(id, -1 - slot);
    if (head >= 0) this.setPrev(head, id);
    else this.occupied[slot >> 5] |= 1 << (slot & 31);
    this.heads[slot] = id;
    this.linked++;
    if (this.cachedNext >= 0 && (abs + 1) * WHEEL_GRANULARITY_US < this.cachedNext) this.cachedNext = (abs + 1) * WHEEL_GRANULARITY_US;
  }

  /** Takes `id` out of whatever list holds it. */
  unlink(id: number): void {
    const p = this.prev(id);
    const n = this.next(id);
    if (p >= 0) {
      this.setNext(p, n);
    } else {
      const slot = -1 - p;
      this.heads[slot] = n;
      if (n < 0 && slot !== PENDING) this.occupied[slot >> 5] &= ~(1 << (slot & 31));
    }
    if (n >= 0) this.setPrev(n, p);
    this.linked--;
  }

  /**
   * The next entry filed in a slot whose second has fully passed at `nowUs`, unlinked; or
   * -1 when there is none. The caller destroys it or links it again.
   */
  popDue(): number {
    for (;;) {
      const id = this.heads[PENDING];
      if (id >= 0) {
        const n = this.next(id);
        this.heads[PENDING] = n;
        if (n >= 0) this.setPrev(n, -1 - PENDING);
        this.linked--;
        return id;
      }
      const nowSlot = Math.floor(this.nowUs / WHEEL_GRANULARITY_US);
      if (this.cursor >= nowSlot) return -1;
      if (this.linked === 0) {
        // (PENDING is empty here, so nothing is filed at all.)
        this.moveCursor(nowSlot);
        return -1;
      }
      const d = this.distanceToOccupied(this.cursor & SLOT_MASK, Math.min(nowSlot - this.cursor, WHEEL_SLOTS));
      if (d < 0) {
        this.moveCursor(nowSlot);
        return -1;
      }
      // Hand the slot's whole list over to PENDING and step past it.
      const slot = (this.cursor + d) & SLOT_MASK;
      const head = this.heads[slot];
      this.heads[slot] = -1;
      this.occupied[slot >> 5] &= ~(1 << (slot & 31));
      this.heads[PENDING] = head;
      this.setPrev(head, -1 - PENDING);
      this.moveCursor(this.cursor + d + 1);
    }
  }

  /** The instant the earliest non-empty slot is due (µs), or Infinity when nothing is filed. */
  nextDeadline(): number {
    if (this.heads[PENDING] >= 0) return this.cursor * WHEEL_GRANULARITY_US;
    if (this.linked === 0) return Infinity;
    if (this.cachedNext < 0) {
      const d = this.distanceToOccupied(this.cursor & SLOT_MASK, WHEEL_SLOTS);
      this.cachedNext = (this.cursor + d + 1) * WHEEL_GRANULARITY_US;
    }
    return this.cachedNext;
  }

  /** The first entry of the earliest non-empty slot, or -1 (to look at the oldest entries). */
  earliest(): number {
    if (this.heads[PENDING] >= 0) return this.heads[PENDING];
    if (this.linked === 0) return -1;
    const d = this.distanceToOccupied(this.cursor & SLOT_MASK, WHEEL_SLOTS);
    return d < 0 ? -1 : this.heads[(this.cursor + d) & SLOT_MASK];
  }

  private moveCursor(to: number): void {
    this.cursor = to;
    this.cachedNext = -1;
  }

  /** Slots from `from` (wrapping) to the first non-empty one, if fewer than `limit`; else -1. */
  private distanceToOccupied(from: number, limit: number): number {
    const occ = this.occupied;
    let i = from;
    let dist = 0;
    while (dist < limit) {
      const bit = i & 31;
      const word = occ[i >> 5] >>> bit;
      if (word !== 0) {
        const tz = 31 - Math.clz32(word & -word);
        return dist + tz < limit ? dist + tz : -1;
      }
      const step = 32 - bit;
      dist += step;
      i = (i + step) & SLOT_MASK;
    }
    return -1;
  }
}
