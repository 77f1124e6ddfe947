/**
 * Tests for src/tables/lpm4.ts: edge cases by hand, then differential runs against the naive
 * list-scan reference (test/helpers/naive-lpm4.ts) with a seeded PRNG and with fast-check.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Lpm4 } from '../../src/tables/lpm4.ts';
import { NaiveLpm4 } from '../helpers/naive-lpm4.ts';

const ip = (s: string): number => s.split('.').reduce((a, o) => a * 256 + Number(o), 0);
const mask = (len: number): number => (len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0);
const lastOf = (prefix: number, len: number): number => (prefix | ~mask(len)) >>> 0;

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

describe('Lpm4 edge cases', () => {
  it('empty table returns NONE', () => {
    const t = new Lpm4();
    expect(Lpm4.NONE).toBe(-1);
    for (const a of [0, 1, ip('10.0.0.1'), 0xffffffff, -1]) expect(t.lookup(a)).toBe(-1);
    expect(t.size).toBe(0);
    expect([...t.entries()]).toEqual([]);
    expect(t.remove(0, 0)).toBe(false);
  });

  it('0.0.0.0/0 alone matches everything, and removing it empties the table', () => {
    const t = new Lpm4();
    t.insert(0, 0, 7);
    for (const a of [0, ip('10.1.2.3'), ip('128.0.0.0'), 0xffffffff]) expect(t.lookup(a)).toBe(7);
    expect(t.remove(0, 0)).toBe(true);
    expect(t.lookup(ip('10.1.2.3'))).toBe(-1);
    expect(t.size).toBe(0);
  });

  it('255.255.255.255/32 matches only itself', () => {
    const t = new Lpm4();
    t.insert(0xffffffff, 32, 3);
    expect(t.lookup(0xffffffff)).toBe(3);
    expect(t.lookup(-1)).toBe(3); // signed form of the same address
    expect(t.lookup(0xfffffffe)).toBe(-1);
    expect(t.lookup(0)).toBe(-1);
    expect([...t.entries()]).toEqual([{ prefix: 0xffffffff, prefixLen: 32, value: 3 }]);
  });

  it('removing a prefix covered by a shorter one and covering a longer one restores both', () => {
    for (const [short, mid, long] of [
      [8, 20, 28],
      [8, 12, 14],
      [17, 20, 23],
      [0, 24, 32],
      [16, 24, 32],
      [25, 27, 32],
    ]) {
      const t = new Lpm4();
      const base = ip('10.20.30.40');
      t.insert(base, short, 1);
      t.insert(base, mid, 2);
      t.insert(base, long, 3);
      // Flip the last bit of a prefix to leave it while staying inside every shorter one.
      const inLong = base;
      const inMidOnly = (base ^ (1 << (32 - long))) >>> 0;
      const inShortOnly = (base ^ (1 << (32 - mid))) >>> 0;
      expect(t.lookup(inLong)).toBe(3);
      expect(t.lookup(inMidOnly)).toBe(2);
      expect(t.lookup(inShortOnly)).toBe(1);
      expect(t.remove(base, mid)).toBe(true);
      expect(t.lookup(inLong)).toBe(3);
      expect(t.lookup(inMidOnly)).toBe(1);
      expect(t.lookup(inShortOnly)).toBe(1);
      expect(t.remove(base, mid)).toBe(false);
      expect(t.remove(base, long)).toBe(true);
      expect(t.lookup(inLong)).toBe(1);
      expect(t.remove(base, short)).toBe(true);
      expect(t.lookup(inLong)).toBe(-1);
      expect(t.chunksInUse).toBe(0);
    }
  });

  it('inserting the same prefix twice replaces the value and keeps size', () => {
    const t = new Lpm4();
    t.insert(ip('192.168.0.0'), 16, 1);
    t.insert(ip('192.168.0.0'), 16, 2);
    expect(t.size).toBe(1);
    expect(t.lookup(ip('192.168.5.5'))).toBe(2);
    t.insert(ip('192.168.5.0'), 24, 3);
    t.insert(ip('192.168.0.0'), 16, 4); // must not clobber the more-specific /24
    expect(t.lookup(ip('192.168.5.5'))).toBe(3);
    expect(t.lookup(ip('192.168.6.5'))).toBe(4);
    expect(t.size).toBe(2);
  });

  it('prefix with host bits set is masked on insert, remove and get', () => {
    const t = new Lpm4();
    t.insert(ip('10.1.2.3'), 8, 9);
    expect(t.lookup(ip('10.200.0.1'))).toBe(9);
    expect(t.get(ip('10.0.0.0'), 8)).toBe(9);
    expect([...t.entries()]).toEqual([{ prefix: ip('10.0.0.0'), prefixLen: 8, value: 9 }]);
    expect(t.remove(ip('10.99.99.99'), 8)).toBe(true);
    expect(t.size).toBe(0);
  });

  it('rejects bad lengths, values and overflow of maxRoutes', () => {
    const t = new Lpm4({ maxRoutes: 2 });
    expect(() => t.insert(0, 33, 1)).toThrow(RangeError);
    expect(() => t.insert(0, -1, 1)).toThrow(RangeError);
    expect(() => t.insert(0, 8, -1)).toThrow(RangeError);
    expect(() => t.insert(0, 8, 1.5)).toThrow(RangeError);
    expect(() => t.insert(0, 8, 2 ** 31)).toThrow(RangeError);
    t.insert(0, 8, 1);
    t.insert(ip('1.0.0.0'), 8, 1);
    t.insert(ip('1.0.0.0'), 8, 2); // a replacement is not a new route
    expect(() => t.insert(ip('2.0.0.0'), 8, 1)).toThrow(/table full/);
    expect(t.size).toBe(2);
  });

  it('clear() empties everything and the table is reusable', () => {
    const t = new Lpm4();
    for (let i = 0; i < 5000; i++) t.insert(i * 7919 * 65537, 28, i);
    t.clear();
    expect(t.size).toBe(0);
    expect(t.chunksInUse).toBe(0);
    expect(t.lookup(7919 * 65537)).toBe(-1);
    t.insert(ip('10.0.0.0'), 30, 5);
    expect(t.lookup(ip('10.0.0.3'))).toBe(5);
  });

  it('entries() sorts by prefix then length and returns chunks when routes go', () => {
    const t = new Lpm4();
    t.insert(ip('10.0.0.0'), 24, 3);
    t.insert(ip('10.0.0.0'), 8, 1);
    t.insert(ip('9.0.0.0'), 32, 4);
    t.insert(ip('10.0.0.0'), 16, 2);
    t.insert(0, 0, 0);
    expect([...t.entries()].map((e) => [e.prefix, e.prefixLen, e.value])).toEqual([
      [0, 0, 0],
      [ip('9.0.0.0'), 32, 4],
      [ip('10.0.0.0'), 8, 1],
      [ip('10.0.0.0'), 16, 2],
      [ip('10.0.0.0'), 24, 3],
    ]);
    expect(t.chunksInUse).toBe(3); // 9.0/16 level 2 + 9.0.0/24 level 3, 10.0/16 level 2
    t.remove(ip('9.0.0.0'), 32);
    t.remove(ip('10.0.0.0'), 24);
    expect(t.chunksInUse).toBe(0);
  });
});

/** Picks a random prefix length 0..32, favouring the stride boundaries and their neighbours. */
function randomLen(rnd: () => number): number {
  const r = rnd() % 10;
  if (r < 5) return rnd() % 33;
  return [0, 8, 15, 16, 17, 23, 24, 25, 31, 32][rnd() % 10];
}

describe('Lpm4 vs naive reference (seeded)', () => {
  it('agrees over interleaved inserts, replacements and removes', () => {
    let checked = 0;
    for (let seed = 1; seed <= 12; seed++) {
      const rnd = mulberry32(seed);
      const fast = new Lpm4();
      const ref = new NaiveLpm4();
      // Half of the runs draw prefixes from a few clustered bases, so nesting is common.
      const clustered = seed % 2 === 0;
      const bases = Array.from({ length: 3 }, () => rnd());
      const randomAddr = (): number =>
        clustered ? ((bases[rnd() % 3] & 0xfff00000) | (rnd() & 0x000fffff)) >>> 0 : rnd();
      const check = (a: number): void => {
        const want = ref.lookup(a);
        const got = fast.lookup(a);
        if (got !== want) {
          throw new Error(`seed ${seed}: lookup(${a >>> 0}) = ${got}, want ${want}`);
        }
        checked++;
      };
      for (let step = 0; step < 600; step++) {
        for (let op = 0; op < 8; op++) {
          const r = rnd() % 100;
          const routes = ref.list();
          if (r < 50 || routes.length < 5) {
            const a = randomAddr();
            const len = randomLen(rnd);
            const value = rnd() % 1000;
            fast.insert(a, len, value);
            ref.insert(a, len, value);
          } else if (r < 65) {
            const x = routes[rnd() % routes.length]; // replacement, host bits set
            const value = rnd() % 1000;
            const a = (x.prefix | (rnd() & ~mask(x.prefixLen))) >>> 0;
            fast.insert(a, x.prefixLen, value);
            ref.insert(a, x.prefixLen, value);
          } else if (r < 95) {
            const x = routes[rnd() % routes.length];
            expect(fast.remove(x.prefix, x.prefixLen)).toBe(ref.remove(x.prefix, x.prefixLen));
          } else {
            const a = randomAddr();
            const len = randomLen(rnd);
            expect(fast.remove(a, len)).toBe(ref.remove(a, len));
          }
        }
        expect(fast.size).toBe(ref.size);
        for (let i = 0; i < 20; i++) check(randomAddr());
        const routes = ref.list();
        for (let i = 0; i < 6 && routes.length; i++) {
          const x = routes[rnd() % routes.length];
          const last = lastOf(x.prefix, x.prefixLen);
          check(x.prefix);
          check(last);
          check((last + 1) >>> 0);
          check((x.prefix - 1) >>> 0);
        }
        if (step % 100 === 99) expect([...fast.entries()]).toEqual(ref.entries());
      }
      // Drain everything: all chunks must come back.
      for (const x of [...ref.list()]) {
        expect(fast.remove(x.prefix, x.prefixLen)).toBe(ref.remove(x.prefix, x.prefixLen));
      }
      expect(fast.size).toBe(0);
      expect(fast.chunksInUse).toBe(0);
      for (let i = 0; i < 200; i++) check(randomAddr());
    }
    expect(checked).toBeGreaterThanOrEqual(200_000);
  });

  it('agrees on a 20k-prefix table, before and after removing half', () => {
    const rnd = mulberry32(99);
    const fast = new Lpm4();
    const ref = new NaiveLpm4();
    for (let i = 0; i < 20_000; i++) {
      const a = rnd();
      const len = 8 + (rnd() % 25);
      fast.insert(a, len, i);
      ref.insert(a, len, i);
    }
    fast.insert(0, 0, 424242);
    ref.insert(0, 0, 424242);
    const probe = (): void => {
      const routes = ref.list();
      for (let i = 0; i < 1500; i++) {
        const a = i % 2 ? rnd() : (routes[rnd() % routes.length].prefix + (rnd() & 255)) >>> 0;
        expect(fast.lookup(a)).toBe(ref.lookup(a));
      }
    };
    probe();
    for (const x of ref.list().filter((_, i) => i % 2 === 0)) fast.remove(x.prefix, x.prefixLen);
    for (const x of ref.list().filter((_, i) => i % 2 === 0)) ref.remove(x.prefix, x.prefixLen);
    expect(fast.size).toBe(ref.size);
    probe();
  });
});

describe('Lpm4 vs naive reference (fast-check)', () => {
  const base = 0x0a140000; // 10.20.0.0: every route falls inside 10.20.0.0/14, so they nest
  const route = fc.record({
    off: fc.integer({ min: 0, max: 0x3ffff }),
    len: fc.integer({ min: 0, max: 32 }),
    value: fc.integer({ min: 0, max: 0x7fffffff }),
    del: fc.boolean(),
  });
  const probes = fc.array(fc.integer({ min: 0, max: 0x3ffff }), { minLength: 1, maxLength: 40 });
  it('holds for arbitrary operation sequences', () => {
    fc.assert(
      fc.property(fc.array(route, { maxLength: 60 }), probes, (ops, offs) => {
        const fast = new Lpm4();
        const ref = new NaiveLpm4();
        const agree = (off: number): void => {
          expect(fast.lookup(base + off)).toBe(ref.lookup(base + off));
        };
        for (const o of ops) {
          const a = (base + o.off) >>> 0;
          if (o.del) expect(fast.remove(a, o.len)).toBe(ref.remove(a, o.len));
          else {
            fast.insert(a, o.len, o.value);
            ref.insert(a, o.len, o.value);
          }
          offs.slice(0, 8).forEach(agree);
        }
        offs.forEach(agree);
        expect([...fast.entries()]).toEqual(ref.entries());
      }),
      { numRuns: 300, seed: 7 },
    );
  });
});
