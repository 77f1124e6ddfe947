/**
 * TupleIndex: the one hash index of connection tracking, from a 5-tuple to a tuple ref.
 *
 * Every conntrack entry has two tuples, original and reply; a *ref* names one of them:
 * `ref = id << 1 | dir` (dir 0 original, 1 reply). The index owns the entries' int32
 * records, `stride` words per entry, of which the first eight are the two tuples, four
 * words each, so an entry's tuples share a cache line with the rest of its record:
 *
 *   rec[tupleAt(ref) + 0]  source address       (IPv4 as int32)
 *   rec[tupleAt(ref) + 1]  destination address
 *   rec[tupleAt(ref) + 2]  sport << 16 | dport  (ICMP echo: identifier << 16 | identifier)
 *   rec[tupleAt(ref) + 3]  proto << 24 | low 24 bits of the tuple's hash
 *   tupleAt(ref) = (ref >> 1) * stride + (ref & 1) * 4; words 8.. belong to the owner.
 *
 * The index is open addressing with linear probing over a power-of-two array of buckets,
 * at most half full. A bucket holds `ref + 1` in its low 24 bits (0 is empty, so an index
 * never written stays unbacked zero pages) and, above, how far it sits from its home bucket
 * (0..126; 127 means "that far or more: read the record"). A probe compares word 3 first:
 * protocol and 24 hash bits in one comparison reject almost every other tuple without
 * reading more. Removal shifts the rest of the run back (no tombstones), deciding from the
 * stored distances alone, so it reads no other entry's record (each such read is a cache
 * miss in a large table). Home buckets come from the 24 stored hash bits, so the array has
 * at most 2^24 buckets: 2^23 refs, 2^22 entries.
 *
 * The hash is seeded, so which tuples collide cannot be chosen from outside.
 * No allocation: every argument and value is an int32.
 */

export const MAX_INDEX_ENTRIES = 1 << 22;

const REF_MASK = 0xffffff;
const DIST_SHIFT = 24;
/** A distance this large or more is not stored: the home bucket is read from the record. */
const DIST_FAR = 127;

export class TupleIndex {
  /** The entries' records, `stride` int32 each; words 0-7 are the two tuples (see the header). */
  readonly rec: Int32Array;
  readonly stride: number;
  /** Bucket → ref + 1, or 0 when empty. */
  private readonly buckets: Int32Array;
  private readonly mask: number;
  private readonly seed: number;
  /** Refs in the index. */
  size = 0;

  /** An index for `entries` entries (2 refs each) with records of `stride` (at least 8) int32. */
  constructor(entries: number, seed = 0x2545f491, stride = 8) {
    if (entries > MAX_INDEX_ENTRIES) throw new RangeError(`conntrack: at most ${MAX_INDEX_ENTRIES} entries`);
    if (stride < 8) throw new RangeError('TupleIndex: a record holds two tuples of four words');
    this.stride = stride;
    this.rec = new Int32Array(entries * stride);
    let n = 16;
    while (n < entries * 4) n *= 2;
    this.buckets = new Int32Array(n);
    this.mask = n - 1;
    this.seed = seed | 0;
  }

  get bucketCount(): number {
    return this.buckets.length;
  }

  /** Bytes held by the bucket array. */
  get bucketBytes(): number {
    return this.buckets.byteLength;
  }

  /** Where ref's tuple starts in `rec`. */
  tupleAt(ref: number): number {
    return (ref >> 1) * this.stride + ((ref & 1) << 2);
  }

  /** A 32-bit hash of a tuple (murmur3-style mixing of the four words, seeded). */
  hash(proto: number, src: number, dst: number, ports: number): number {
    let h = this.seed ^ Math.imul(proto, 0x9e3779b1);
    h = Math.imul(h ^ src, 0xcc9e2d51);
    h = Math.imul((h << 15) | (h >>> 17), 0x1b873593);
    h = Math.imul(h ^ dst, 0xcc9e2d51);
    h = Math.imul((h << 13) | (h >>> 19), 0x1b873593);
    h = Math.imul(h ^ ports, 0xcc9e2d51);
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    return h ^ (h >>> 16);
  }

  /** The ref whose tuple is (proto, src, dst, ports), or -1. */
  find(proto: number, src: number, dst: number, ports: number): number {
    const h = this.hash(proto, src, dst, ports);
    const tag = (proto << 24) | (h & 0xffffff);
    const buckets = this.buckets;
    const rec = this.rec;
    const mask = this.mask;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const v = buckets[i];
      if (v === 0) return -1;
      const ref = (v & REF_MASK) - 1;
      const o = this.tupleAt(ref);
      if (rec[o + 3] === tag && rec[o] === src && rec[o + 1] === dst && rec[o + 2] === ports) return ref;
    }
  }

  /** Writes a ref's tuple (not indexing it); the hash bits are filled in. */
  write(ref: number, proto: number, src: number, dst: number, ports: number): void {
    const o = this.tupleAt(ref);
    const t = this.rec;
    t[o] = src;
    t[o + 1] = dst;
    t[o + 2] = ports;
    t[o + 3] = (proto << 24) | (this.hash(proto, src, dst, ports) & 0xffffff);
  }

  /**
   * Indexes a ref whose tuple was written. Returns false (and indexes nothing) when another
   * ref with an equal tuple is indexed already.
   */
  insert(ref: number): boolean {
    const t = this.rec;
    const o = this.tupleAt(ref);
    const src = t[o];
    const dst = t[o + 1];
    const ports = t[o + 2];
    const tag = t[o + 3];
    const buckets = this.buckets;
    const mask = this.mask;
    const home = tag & mask;
    let i = home;
    for (;;) {
      const v = buckets[i];
      if (v === 0) break;
      const p = this.tupleAt((v & REF_MASK) - 1);
      if (t[p + 3] === tag && t[p] === src && t[p + 1] === dst && t[p + 2] === ports) return false;
      i = (i + 1) & mask;
    }
    const dist = (i - home) & mask;
    buckets[i] = (ref + 1) | ((dist < DIST_FAR ? dist : DIST_FAR) << DIST_SHIFT);
    this.size++;
    return true;
  }

  /** Removes an indexed ref. */
  remove(ref: number): void {
    const buckets = this.buckets;
    const mask = this.mask;
    const want = ref + 1;
    let hole = this.rec[this.tupleAt(ref) + 3] & mask;
    for (;;) {
      const v = buckets[hole];
      if (v === 0) return; // not indexed: nothing to do
      if ((v & REF_MASK) === want) break;
      hole = (hole + 1) & mask;
    }
    // Backward-shift deletion: pull a later member of the run into the hole when the hole
    // lies between its home bucket and where it sits (its distance reaches back that far).
    let j = (hole + 1) & mask;
    for (;;) {
      const v = buckets[j];
      if (v === 0) break;
      let dist = v >>> DIST_SHIFT;
      if (dist === DIST_FAR) dist = (j - (this.rec[this.tupleAt((v & REF_MASK) - 1) + 3] & mask)) & mask;
      const gap = (j - hole) & mask;
      if (dist >= gap) {
        const moved = dist - gap;
        buckets[hole] = (v & REF_MASK) | ((moved < DIST_FAR ? moved : DIST_FAR) << DIST_SHIFT);
        hole = j;
      }
      j = (j + 1) & mask;
    }
    buckets[hole] = 0;
    this.size--;
  }

  /** The home bucket of a tuple, to scan its neighbourhood (early drop). */
  homeOf(proto: number, src: number, dst: number, ports: number): number {
    return this.hash(proto, src, dst, ports) & this.mask;
  }

  /** The ref in bucket `i` (taken modulo the bucket count), or -1 when it is empty. */
  refAt(i: number): number {
    return (this.buckets[i & this.mask] & REF_MASK) - 1;
  }
}
