/**
 * KeyIndex: insert/find/remove, stable ids, a full table, and backward-shift deletion under
 * heavy collisions, checked against a Map over 100,000 seeded random operations.
 */
import { describe, expect, it } from 'vitest';
import { KeyIndex } from '../../src/tables/key-index.ts';

/** A small seeded generator (xorshift32), independent of src/core/random.ts. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>>= 0);
  };
}

/** The home bucket of a key, read from the index itself, to build collisions on purpose. */
function homeOf(idx: KeyIndex): (a: number, b: number) => number {
  const probe = idx as unknown as { bucketOf?: (a: number, b: number) => number };
  expect(typeof probe.bucketOf).toBe('function');
  return (a, b) => probe.bucketOf!.call(idx, a >>> 0, b >>> 0);
}

/** Every entry the reference holds is found under its id, and the sizes agree. */
function agree(idx: KeyIndex, ref: Map<string, number>, keys: [number, number][]): void {
  expect(idx.size).toBe(ref.size);
  for (const [a, b] of keys) {
    const want = ref.get(`${a},${b}`);
    expect(idx.find(a, b)).toBe(want ?? -1);
  }
}

describe('KeyIndex', () => {
  it('inserts, finds and removes pairs of 32-bit keys', () => {
    const idx = new KeyIndex(8);
    const a = idx.insert(1, 2);
    const b = idx.insert(2, 1);
    expect(a).toBeGreaterThanOrEqual(0);
    expect(b).not.toBe(a);
    expect(idx.find(1, 2)).toBe(a);
    expect(idx.find(2, 1)).toBe(b);
    expect(idx.find(1, 1)).toBe(-1);
    expect(idx.size).toBe(2);
    idx.remove(a);
    expect(idx.find(1, 2)).toBe(-1);
    expect(idx.find(2, 1)).toBe(b);
    expect(idx.size).toBe(1);
    expect(idx.used[a]).toBe(0);
    expect(idx.used[b]).toBe(1);
  });

  it('returns the existing id when a key is inserted again', () => {
    const idx = new KeyIndex(4);
    const id = idx.insert(7, 9);
    expect(idx.insert(7, 9)).toBe(id);
    expect(idx.size).toBe(1);
  });

  it('treats keys as unsigned: 0xffffffff and -1 are the same key', () => {
    const idx = new KeyIndex(4);
    const id = idx.insert(0xffffffff, 0x80000000);
    expect(idx.find(-1, -0x80000000)).toBe(id);
    // Stored keys read back as the same 32 bits, however the table keeps them.
    expect(idx.k1[id] >>> 0).toBe(0xffffffff);
    expect(idx.k2[id] >>> 0).toBe(0x80000000);
  });

  it('returns -1 from insert when full, and takes a new key again after a removal', () => {
    const idx = new KeyIndex(5);
    const ids = [0, 1, 2, 3, 4].map((i) => idx.insert(i, 100 + i));
    expect(new Set(ids).size).toBe(5);
    expect(ids.every((id) => id >= 0 && id < 5)).toBe(true);
    expect(idx.insert(99, 99)).toBe(-1);
    expect(idx.size).toBe(5);
    // A key already present is still found, full or not.
    expect(idx.insert(3, 103)).toBe(ids[3]);
    idx.remove(ids[1]);
    const again = idx.insert(99, 99);
    expect(again).toBe(ids[1]);
    expect(idx.find(99, 99)).toBe(again);
    expect(idx.insert(98, 98)).toBe(-1);
  });

  it('keeps the ids of the other entries while entries come and go', () => {
    const idx = new KeyIndex(64);
    const ids = new Map<number, number>();
    for (let i = 0; i < 64; i++) ids.set(i, idx.insert(i, i * 31));
    for (let i = 0; i < 64; i += 2) idx.remove(ids.get(i)!);
    for (let i = 1; i < 64; i += 2) expect(idx.find(i, i * 31)).toBe(ids.get(i));
    for (let i = 100; i < 132; i++) idx.insert(i, i);
    for (let i = 1; i < 64; i += 2) expect(idx.find(i, i * 31)).toBe(ids.get(i));
    expect(idx.size).toBe(64);
  });

  it('removing an absent id changes nothing', () => {
    const idx = new KeyIndex(4);
    const id = idx.insert(1, 1);
    idx.remove(id);
    idx.remove(id);
    expect(idx.size).toBe(0);
    expect(idx.insert(2, 2)).toBe(id);
    expect(idx.insert(3, 3)).toBeGreaterThanOrEqual(0);
    expect(idx.size).toBe(2);
  });

  it('finds every survivor of a run of keys sharing one home bucket, whatever the removal order', () => {
    const idx = new KeyIndex(16); // 32 buckets
    const home = homeOf(idx);
    const last = home(0, 0) | 31; // the final bucket, so the run wraps around to bucket 0
    const next = rng(5);
    const same: [number, number][] = [];
    const after: [number, number][] = [];
    while (same.length < 8 || after.length < 4) {
      const k: [number, number] = [next(), next()];
      const h = home(k[0], k[1]);
      if (h === last && same.length < 8) same.push(k);
      else if ((h === 0 || h === 1) && after.length < 4) after.push(k);
    }
    for (let order = 0; order < 20; order++) {
      const shuffle = rng(100 + order);
      const keys = [...same, ...after].sort(() => (shuffle() & 1 ? 1 : -1));
      const ids = new Map<string, number>();
      for (const [a, b] of keys) ids.set(`${a},${b}`, idx.insert(a, b));
      const ref = new Map(ids);
      for (const [a, b] of [...keys].sort(() => (shuffle() & 1 ? 1 : -1))) {
        idx.remove(ref.get(`${a},${b}`)!);
        ref.delete(`${a},${b}`);
        agree(idx, ref, keys);
      }
      expect(idx.size).toBe(0);
    }
  });

  /** Runs `ops` random insert/remove/find operations on `keys` against a Map. */
  function differential(idx: KeyIndex, keys: [number, number][], ops: number, seed: number): void {
    const next = rng(seed);
    const capacity = idx.capacity;
    const ref = new Map<string, number>();
    const idOwner = new Map<number, string>();
    for (let op = 0; op < ops; op++) {
      const [a, b] = keys[next() % keys.length];
      const key = `${a},${b}`;
      const r = next() % 10;
      if (r < 5) {
        const id = idx.insert(a, b);
        if (ref.has(key)) expect(id).toBe(ref.get(key));
        else if (ref.size === capacity) expect(id).toBe(-1);
        else {
          if (!(id >= 0 && id < capacity) || idOwner.has(id)) expect.fail(`op ${op}: insert gave id ${id}`);
          ref.set(key, id);
          idOwner.set(id, key);
        }
      } else if (r < 8) {
        const id = ref.get(key);
        if (id !== undefined) {
          idx.remove(id);
          ref.delete(key);
          idOwner.delete(id);
        }
        if (idx.find(a, b) !== -1) expect.fail(`op ${op}: ${key} found after removal`);
      } else if (idx.find(a, b) !== (ref.get(key) ?? -1)) {
        expect.fail(`op ${op}: find(${key}) = ${idx.find(a, b)}, want ${ref.get(key) ?? -1}`);
      }
      if (op % 997 === 0) agree(idx, ref, keys);
    }
    agree(idx, ref, keys);
    for (const [key, id] of ref) {
      const [a, b] = key.split(',').map(Number);
      expect([idx.k1[id] >>> 0, idx.k2[id] >>> 0, idx.used[id]]).toEqual([a >>> 0, b >>> 0, 1]);
    }
  }

  it('agrees with a Map over 100,000 random operations on a crowded table', () => {
    const keys: [number, number][] = [];
    // Keys differing in few bits, some with the top bit set; more keys than the table holds.
    for (let i = 0; i < 150; i++) keys.push([(i % 5) + (i % 3 === 0 ? 0x80000000 : 0), i >> 2]);
    differential(new KeyIndex(64), keys, 100_000, 1);
    differential(new KeyIndex(7), keys.slice(0, 20), 20_000, 2);
  });

  it('agrees with a Map over 100,000 operations when every key homes in three buckets around the wrap', () => {
    const idx = new KeyIndex(32); // 64 buckets
    const home = homeOf(idx);
    const next = rng(9);
    const keys: [number, number][] = [];
    while (keys.length < 48) {
      const k: [number, number] = [next() & 0xff, next()];
      const h = home(k[0], k[1]);
      if (h === 62 || h === 63 || h === 0) keys.push(k);
    }
    differential(idx, keys, 100_000, 3);
  });

  it('clear empties the index and every id is free again', () => {
    const idx = new KeyIndex(8);
    for (let i = 0; i < 8; i++) idx.insert(i, i);
    idx.clear();
    expect(idx.size).toBe(0);
    for (let i = 0; i < 8; i++) expect(idx.find(i, i)).toBe(-1);
    for (let i = 0; i < 8; i++) expect(idx.insert(100 + i, i)).toBeGreaterThanOrEqual(0);
  });
});
