/**
 * KeyIndex: an open-addressing hash index from a pair of 32-bit keys to a stable entry id.
 *
 * The tables (FDB, neighbours, later conntrack) keep their values in typed arrays indexed by
 * entry id; this index only finds the id. A MAC is keyed as (owner << 16 | high 16 bits, low
 * 32 bits), an IPv4 neighbour as (interface, address). Linear probing over a power-of-two
 * table at most half full; removal shifts the following run back (no tombstones), so lookups
 * stay short however long the table lives. Entry ids come from a free stack and never move.
 */

const EMPTY = -1;

export class KeyIndex {
  readonly capacity: number;
  /** Keys as int32: every value stays a small integer in V8 (a uint32 above 2^31 would box). */
  readonly k1: Int32Array;
  readonly k2: Int32Array;
  /** Whether an entry id is in use. */
  readonly used: Uint8Array;
  private readonly buckets: Int32Array;
  private readonly mask: number;
  private readonly freeIds: Int32Array;
  private freeTop: number;
  private count = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
    this.k1 = new Int32Array(capacity);
    this.k2 = new Int32Array(capacity);
    this.used = new Uint8Array(capacity);
    let size = 16;
    while (size < capacity * 2) size *= 2;
    this.buckets = new Int32Array(size).fill(EMPTY);
    this.mask = size - 1;
    this.freeIds = new Int32Array(capacity);
    for (let i = 0; i < capacity; i++) this.freeIds[i] = capacity - 1 - i;
    this.freeTop = capacity;
  }

  get size(): number {
    return this.count;
  }

  private bucketOf(a: number, b: number): number {
    let h = Math.imul(a ^ 0x27d4eb2d, 0x9e3779b1) ^ b;
    h = Math.imul(h ^ (h >>> 15), 0x85ebca6b);
    return (h ^ (h >>> 13)) & this.mask;
  }

  /** The entry id for (a, b), or -1. Keys may be given as uint32 or int32. */
  find(a: number, b: number): number {
    const buckets = this.buckets;
    const mask = this.mask;
    a |= 0;
    b |= 0;
    let i = this.bucketOf(a, b);
    for (;;) {
      const id = buckets[i];
      if (id === EMPTY) return -1;
      if (this.k1[id] === a && this.k2[id] === b) return id;
      i = (i + 1) & mask;
    }
  }

  /** Adds (a, b) and returns its new id; the existing id if present; -1 when full. */
  insert(a: number, b: number): number {
    const found = this.find(a, b);
    if (found >= 0) return found;
    return this.insertNew(a, b);
  }

  /** Whether every id is in use (an insert would fail). */
  get isFull(): boolean {
    return this.freeTop === 0;
  }

  /** insert for a key `find` has just missed: no second search. Its new id, or -1 when full. */
  insertNew(a: number, b: number): number {
    if (this.freeTop === 0) return -1;
    a |= 0;
    b |= 0;
    const id = this.freeIds[--this.freeTop];
    this.k1[id] = a;
    this.k2[id] = b;
    this.used[id] = 1;
    let i = this.bucketOf(a, b);
    while (this.buckets[i] !== EMPTY) i = (i + 1) & this.mask;
    this.buckets[i] = id;
    this.count++;
    return id;
  }

  /** Removes entry `id`; its id becomes free for reuse. */
  remove(id: number): void {
    if (!this.used[id]) return;
    const mask = this.mask;
    const buckets = this.buckets;
    let i = this.bucketOf(this.k1[id], this.k2[id]);
    while (buckets[i] !== id) i = (i + 1) & mask;
    // Backward-shift deletion: pull later members of the probe run into the hole.
    let hole = i;
    let j = (i + 1) & mask;
    for (;;) {
      const other = buckets[j];
      if (other === EMPTY) break;
      const home = this.bucketOf(this.k1[other], this.k2[other]);
      // Move `other` into the hole if its home is not cyclically within (hole, j].
      const inRange = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (!inRange) {
        buckets[hole] = other;
        hole = j;
      }
      j = (j + 1) & mask;
    }
    buckets[hole] = EMPTY;
    this.used[id] = 0;
    this.freeIds[this.freeTop++] = id;
    this.count--;
  }

  clear(): void {
    for (let id = 0; id < this.capacity; id++) if (this.used[id]) this.remove(id);
  }
}
