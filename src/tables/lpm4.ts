/**
 * Lpm4 — IPv4 longest-prefix-match table for the router's FIB.
 *
 * Input: routes (prefix u32, prefixLen 0..32, value = a non-negative int32 next-hop index).
 * Output: lookup(addr) → value of the longest matching prefix, or Lpm4.NONE (-1).
 * Config: maxRoutes (default 4,194,304) — insert() of a new prefix beyond it throws.
 *
 * Design: a multibit trie with strides 16-8-8, leaf-pushed, in ONE Int32Array `tbl`:
 *   tbl[0 .. 65535]          level 1, indexed by addr >>> 16
 *   tbl[65536 + 256*k ..]    chunk k (level 2 under a /16, or level 3 under a /24)
 * A slot holds a value (>= 0), NONE (-1), or a child pointer -(offset of the chunk), which
 * is <= -65536. The default route 0.0.0.0/0 is kept in a field, not painted into the trie,
 * so a default-gateway change is O(1); lookup falls back to it when the trie says NONE.
 * Lookup is at most three loads and three well-predicted compares, no allocation, no loop:
 *   e = tbl[a >>> 16]
 *   if (e < -1) { e = tbl[-e + (a >>> 8 & 255)]; if (e < -1) e = tbl[-e + (a & 255)] }
 *   return e === -1 ? default : e
 * A node's table stays in cache; in a large one a lookup is one or two cache misses, which
 * the CPU overlaps across consecutive lookups. Rates, build times and sizes measured with
 * bench/lpm4.bench.ts are in docs/benchmarks.md.
 *
 * Why 16-8-8 and not DIR-24-8 or a poptrie: DIR-24-8 costs a fixed 64 MiB (16M × int32)
 * even for the dozen routes of a typical node, to save one load. A poptrie is far smaller
 * (a few MiB for a full table) but needs popcounts on lookup and rebuilds subtrees on update:
 * more code, slower to change. 16-8-8 starts at 320 KiB and grows only where prefixes need
 * it: a level-2 chunk (256 slots × 5 bytes with the depth array = 1.25 KiB) per /16 holding
 * a /17../32, a level-3 chunk per /24 holding a /25../32; level 2 is capped at 80 MiB (all
 * 65,536 /16s). Real tables cluster and need fewer chunks than the bench's random ones. The
 * pool grows by 1.5×, so up to a third more is allocated than used. Chunks are
 * reference-counted by the routes below them and go back to a free list with the last one,
 * so churn does not leak.
 *
 * Updates: every slot also carries depth = (prefixLen + 1) of the route whose value it holds
 * (0 = none); for a pointer slot, the depth of the best route covering the whole slot. Insert
 * paints the prefix's slot range, skipping slots owned by longer routes; remove repaints only
 * the slots whose depth equals the removed route's, with the next-shorter covering route
 * found by probing the per-length maps (the classic pitfall: remove must restore the covering
 * route, not clear to NONE, and must not touch more-specific routes). Cost: 2^(level
 * boundary - len) slots (one for a /16, /24 or /32; 256 for a /8) plus the chunks below those
 * slots that no longer route owns; the worst case is a /1. The authoritative route set
 * lives in 33 Maps (one per length, key = prefix as int32) for remove(), get() and entries();
 * lookup never touches them.
 */

const L1_SLOTS = 65536;
const CHUNK_SLOTS = 256;
const INITIAL_CHUNKS = 64;
const DEFAULT_MAX_ROUTES = 4_194_304;
/** Chunk offsets must stay below 2^31 so that -(offset) fits an int32. */
const MAX_CHUNKS = Math.floor((0x7fffffff - L1_SLOTS) / CHUNK_SLOTS);

export interface Lpm4Entry {
  prefix: number;
  prefixLen: number;
  value: number;
}

export interface Lpm4Options {
  /** Most prefixes the table accepts; insert() of one more throws a RangeError. */
  maxRoutes?: number;
}

/** Network mask of a prefix length as a signed int32 (0 for /0). */
function maskOf(len: number): number {
  return len === 0 ? 0 : -1 << (32 - len);
}

export class Lpm4 {
  static readonly NONE = -1;

  /** Level 1 then chunks; see the header for the slot encoding. */
  private tbl: Int32Array;
  /** Per slot: prefixLen + 1 of the route whose value the slot holds (0 = none). */
  private depth: Uint8Array;
  /** Per chunk: number of routes stored below it (len 17..32 for level 2, 25..32 for level 3). */
  private chunkRoutes: Int32Array;
  private chunkCap: number;
  private chunkTop = 0;
  private freeChunks: number[] = [];
  /** byLen[len]: prefix (masked, as int32) → value. */
  private readonly byLen: Map<number, number>[] = [];
  private count = 0;
  private readonly maxRoutes: number;
  /** Value of 0.0.0.0/0, kept outside the trie so that changing it is O(1); NONE if absent. */
  private dflt = Lpm4.NONE;

  constructor(opts?: Lpm4Options) {
    const max = opts?.maxRoutes ?? DEFAULT_MAX_ROUTES;
    if (!Number.isInteger(max) || max < 0) throw new RangeError(`Lpm4: bad maxRoutes ${max}`);
    this.maxRoutes = max;
    for (let l = 0; l <= 32; l++) this.byLen.push(new Map());
    this.chunkCap = INITIAL_CHUNKS;
    this.tbl = new Int32Array(L1_SLOTS + INITIAL_CHUNKS * CHUNK_SLOTS).fill(Lpm4.NONE);
    this.depth = new Uint8Array(this.tbl.length);
    this.chunkRoutes = new Int32Array(INITIAL_CHUNKS);
  }

  get size(): number {
    return this.count;
  }

  /** Chunks currently in use (level 2 and level 3). */
  get chunksInUse(): number {
    return this.chunkTop - this.freeChunks.length;
  }

  /** Bytes held by the trie's typed arrays (excludes the per-length route maps). */
  get byteLength(): number {
    return this.tbl.byteLength + this.depth.byteLength + this.chunkRoutes.byteLength;
  }

  /** Value of the longest prefix matching addr (a u32; signed int32 also accepted), or NONE. */
  lookup(addr: number): number {
    const t = this.tbl;
    let e = t[addr >>> 16];
    if (e < -1) {
      e = t[((addr >>> 8) & 255) - e];
      if (e < -1) e = t[(addr & 255) - e];
    }
    return e === -1 ? this.dflt : e;
  }

  /** Value stored for exactly this prefix, or NONE. */
  get(prefix: number, prefixLen: number): number {
    checkLen(prefixLen);
    return this.byLen[prefixLen].get(prefix & maskOf(prefixLen)) ?? Lpm4.NONE;
  }

  insert(prefix: number, prefixLen: number, value: number): void {
    checkLen(prefixLen);
    if (!Number.isInteger(value) || value < 0 || value > 0x7fffffff) {
      throw new RangeError(`Lpm4: value must be a non-negative int32, got ${value}`);
    }
    const p = prefix & maskOf(prefixLen);
    const routes = this.byLen[prefixLen];
    const isNew = !routes.has(p);
    if (isNew && this.count >= this.maxRoutes) {
      throw new RangeError(`Lpm4: table full (maxRoutes ${this.maxRoutes})`);
    }
    routes.set(p, value);
    if (isNew) this.count++;
    if (prefixLen === 0) {
      this.dflt = value;
      return;
    }

    let start = p >>> 16;
    if (prefixLen > 16) {
      const base2 = this.ensureChunk(start);
      start = base2 + ((p >>> 8) & 255);
      if (prefixLen > 24) {
        const base3 = this.ensureChunk(start);
        start = base3 + (p & 255);
        if (isNew) this.chunkRoutes[(base3 - L1_SLOTS) >> 8]++;
      }
      if (isNew) this.chunkRoutes[(base2 - L1_SLOTS) >> 8]++;
    }
    const d = prefixLen + 1;
    for (let s = start, end = start + slotSpan(prefixLen); s < end; s++) {
      this.paintInsert(s, d, value);
    }
  }

  remove(prefix: number, prefixLen: number): boolean {
    checkLen(prefixLen);
    const p = prefix & maskOf(prefixLen);
    if (!this.byLen[prefixLen].delete(p)) return false;
    this.count--;
    if (prefixLen === 0) {
      this.dflt = Lpm4.NONE;
      return true;
    }

    // The next-shorter route covering p takes over its slots (NONE stands for the /0).
    let newD = 0;
    let newV = Lpm4.NONE;
    for (let l = prefixLen - 1; l > 0; l--) {
      const v = this.byLen[l].get(p & maskOf(l));
      if (v !== undefined) {
        newD = l + 1;
        newV = v;
        break;
      }
    }

    const t = this.tbl;
    const i1 = p >>> 16;
    let start = i1;
    let i2 = 0;
    if (prefixLen > 16) {
      i2 = -t[i1] + ((p >>> 8) & 255);
      start = prefixLen <= 24 ? i2 : -t[i2] + (p & 255);
    }
    const oldD = prefixLen + 1;
    for (let s = start, end = start + slotSpan(prefixLen); s < end; s++) {
      this.paintRemove(s, oldD, newD, newV);
    }

    // Return chunks that no longer hold any route to the free list (level 3 first).
    if (prefixLen > 24) {
      const base3 = -t[i2];
      if (--this.chunkRoutes[(base3 - L1_SLOTS) >> 8] === 0) this.releaseChunk(i2);
    }
    if (prefixLen > 16) {
      const base2 = -t[i1];
      if (--this.chunkRoutes[(base2 - L1_SLOTS) >> 8] === 0) this.releaseChunk(i1);
    }
    return true;
  }

  /**
   * All routes, sorted by prefix then length. A snapshot of the keys is taken when iteration
   * starts; routes removed meanwhile are skipped.
   */
  *entries(): Generator<Lpm4Entry> {
    const keys = new Float64Array(this.count);
    let k = 0;
    for (let l = 0; l <= 32; l++) {
      for (const p of this.byLen[l].keys()) keys[k++] = (p >>> 0) * 64 + l;
    }
    keys.sort();
    for (let i = 0; i < k; i++) {
      const prefix = Math.floor(keys[i] / 64);
      const prefixLen = keys[i] - prefix * 64;
      const value = this.byLen[prefixLen].get(prefix | 0);
      if (value !== undefined) yield { prefix, prefixLen, value };
    }
  }

  clear(): void {
    for (const m of this.byLen) m.clear();
    this.count = 0;
    this.dflt = Lpm4.NONE;
    this.chunkCap = INITIAL_CHUNKS;
    this.chunkTop = 0;
    this.freeChunks = [];
    this.tbl = new Int32Array(L1_SLOTS + INITIAL_CHUNKS * CHUNK_SLOTS).fill(Lpm4.NONE);
    this.depth = new Uint8Array(this.tbl.length);
    this.chunkRoutes = new Int32Array(INITIAL_CHUNKS);
  }

  /** Set slot s (and the chunks below it) to v at depth d wherever no longer route owns it. */
  private paintInsert(s: number, d: number, v: number): void {
    if (this.depth[s] > d) return;
    this.depth[s] = d;
    const e = this.tbl[s];
    if (e < -1) this.paintInsertChunk(-e, d, v);
    else this.tbl[s] = v;
  }

  private paintInsertChunk(base: number, d: number, v: number): void {
    const t = this.tbl;
    const depth = this.depth;
    for (let c = base, end = base + CHUNK_SLOTS; c < end; c++) {
      if (depth[c] > d) continue;
      depth[c] = d;
      const e = t[c];
      if (e < -1) this.paintInsertChunk(-e, d, v);
      else t[c] = v;
    }
  }

  /** Hand the slots owned by depth oldD (and those below them) over to (newD, newV). */
  private paintRemove(s: number, oldD: number, newD: number, newV: number): void {
    if (this.depth[s] !== oldD) return;
    this.depth[s] = newD;
    const e = this.tbl[s];
    if (e < -1) this.paintRemoveChunk(-e, oldD, newD, newV);
    else this.tbl[s] = newV;
  }

  private paintRemoveChunk(base: number, oldD: number, newD: number, newV: number): void {
    const t = this.tbl;
    const depth = this.depth;
    for (let c = base, end = base + CHUNK_SLOTS; c < end; c++) {
      if (depth[c] !== oldD) continue;
      depth[c] = newD;
      const e = t[c];
      if (e < -1) this.paintRemoveChunk(-e, oldD, newD, newV);
      else t[c] = newV;
    }
  }

  /** Offset of the chunk below slot s, creating it (filled with the slot's value) if absent. */
  private ensureChunk(s: number): number {
    const e = this.tbl[s];
    if (e < -1) return -e;
    const base = this.allocChunk(); // may reallocate tbl and depth
    this.tbl.fill(e, base, base + CHUNK_SLOTS);
    this.depth.fill(this.depth[s], base, base + CHUNK_SLOTS);
    this.tbl[s] = -base;
    return base;
  }

  /** Collapse the chunk below slot s back into s. All its slots hold s's own value by now. */
  private releaseChunk(s: number): void {
    const base = -this.tbl[s];
    this.tbl[s] = this.tbl[base];
    this.freeChunks.push((base - L1_SLOTS) >> 8);
  }

  private allocChunk(): number {
    let k = this.freeChunks.pop();
    if (k === undefined) {
      if (this.chunkTop === this.chunkCap) this.grow();
      k = this.chunkTop++;
    }
    this.chunkRoutes[k] = 0;
    return L1_SLOTS + k * CHUNK_SLOTS;
  }

  private grow(): void {
    if (this.chunkCap >= MAX_CHUNKS) throw new RangeError('Lpm4: chunk pool exhausted');
    const cap = Math.min(Math.ceil(this.chunkCap * 1.5), MAX_CHUNKS);
    const tbl = new Int32Array(L1_SLOTS + cap * CHUNK_SLOTS);
    tbl.set(this.tbl);
    const depth = new Uint8Array(tbl.length);
    depth.set(this.depth);
    const routes = new Int32Array(cap);
    routes.set(this.chunkRoutes);
    this.tbl = tbl;
    this.depth = depth;
    this.chunkRoutes = routes;
    this.chunkCap = cap;
  }
}

/** Slots a prefix of this length covers at its own level (strides 16, 8, 8). */
function slotSpan(len: number): number {
  const boundary = len <= 16 ? 16 : len <= 24 ? 24 : 32;
  return 1 << (boundary - len);
}

function checkLen(len: number): void {
  if (!Number.isInteger(len) || len < 0 || len > 32) {
    throw new RangeError(`Lpm4: prefix length must be 0..32, got ${len}`);
  }
}
