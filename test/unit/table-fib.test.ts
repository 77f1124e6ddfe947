/**
 * Fib.isLocal (ip4-lookup's source check) gives the answer of a route lookup — "the route for
 * this address is LOCAL" — whatever sequence of adds, replacements and removals built the
 * table: by hand for the cases its filter must not get wrong (a local address replaced by a
 * static /32, removed, re-added; two local addresses in one hash bucket; a local route wider
 * than /32), then against the lookup over random tables with fast-check.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Fib, RouteKind } from '../../src/tables/fib.ts';

const ip = (s: string): number => s.split('.').reduce((a, o) => a * 256 + Number(o), 0) >>> 0;
const byLookup = (fib: Fib, a: number): boolean => {
  const r = fib.lookup(a);
  return r >= 0 && fib.kind[r] === RouteKind.LOCAL;
};
/** The bucket Fib counts an address in (the same hash, written out here). */
const bucket = (a: number): number => Math.imul(a | 0, 0x9e3779b1) >>> 20;

describe('Fib.isLocal', () => {
  it('follows adds, replacements and removals of local routes', () => {
    const fib = new Fib();
    const me = ip('10.244.1.1');
    fib.add(ip('10.244.1.0'), 24, RouteKind.CONNECTED, 0);
    expect(fib.isLocal(me)).toBe(false);
    fib.add(me, 32, RouteKind.LOCAL, 0);
    expect(fib.isLocal(me)).toBe(true);
    expect(fib.isLocal(ip('10.244.1.2'))).toBe(false);
    // A static /32 for the same address replaces the local route: no longer ours.
    fib.add(me, 32, RouteKind.GATEWAY, 0, ip('10.244.1.9'));
    expect(fib.isLocal(me)).toBe(false);
    fib.add(me, 32, RouteKind.LOCAL, 0);
    expect(fib.isLocal(me)).toBe(true);
    expect(fib.remove(me, 32)).toBe(true);
    expect(fib.isLocal(me)).toBe(false);
    // An address above 2^31 (192.168.x.x) is counted and found like any other.
    const high = ip('192.168.50.11');
    fib.add(high, 32, RouteKind.LOCAL, 1);
    expect(fib.isLocal(high)).toBe(true);
  });

  it('keeps two local addresses of one hash bucket apart', () => {
    const a = ip('10.0.0.1');
    let b = a + 1;
    while (bucket(b) !== bucket(a)) b++;
    const fib = new Fib();
    fib.add(a, 32, RouteKind.LOCAL, 0);
    fib.add(b, 32, RouteKind.LOCAL, 0);
    fib.remove(a, 32);
    // b's count keeps the bucket open; a is looked up and found not local.
    expect(fib.isLocal(a)).toBe(false);
    expect(fib.isLocal(b)).toBe(true);
  });

  it('looks every address up while a local route wider than /32 exists', () => {
    const fib = new Fib();
    fib.add(ip('10.9.0.0'), 24, RouteKind.LOCAL, 0);
    expect(fib.isLocal(ip('10.9.0.77'))).toBe(true);
    fib.remove(ip('10.9.0.0'), 24);
    expect(fib.isLocal(ip('10.9.0.77'))).toBe(false);
  });

  it('agrees with the route lookup over random tables', () => {
    // Addresses drawn from a small space so that adds replace and removes hit.
    const addr = fc.integer({ min: 0, max: 63 }).map((i) => (ip('10.244.0.0') + i * 4099) >>> 0);
    const op = fc.record({
      remove: fc.boolean(),
      a: addr,
      len: fc.constantFrom(32, 32, 32, 24, 16),
      kind: fc.constantFrom(RouteKind.LOCAL, RouteKind.LOCAL, RouteKind.GATEWAY, RouteKind.CONNECTED, RouteKind.BROADCAST),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), fc.array(addr, { minLength: 1, maxLength: 20 }), (ops, probes) => {
        const fib = new Fib(8);
        for (const o of ops) {
          const prefix = (o.a & ((0xffffffff << (32 - o.len)) >>> 0)) >>> 0;
          if (o.remove) fib.remove(prefix, o.len);
          else fib.add(prefix, o.len, o.kind, 0, 1);
        }
        for (const a of [...probes, ...ops.map((o) => o.a)]) expect(fib.isLocal(a)).toBe(byLookup(fib, a));
      }),
      { numRuns: 3_000, seed: 0x6669 },
    );
  });
});
