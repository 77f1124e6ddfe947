/**
 * Fdb as a table: learning, station moves, ageing, the bound, flushPort, static entries, and
 * separate bridges. (The bridge stage's use of it is in stage-bridge.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { Fdb } from '../../src/tables/fdb.ts';

const S = 1_000_000;
const M1 = [0x0a58, 0x0af40102] as const;
const M2 = [0x0a58, 0x0af40103] as const;
const M3 = [0x0a58, 0x0af40104] as const;

function fdb(capacity = 16, ageingSeconds = 300): Fdb {
  const f = new Fdb(capacity);
  f.setAgeing(0, ageingSeconds);
  f.setAgeing(1, ageingSeconds);
  return f;
}

describe('Fdb', () => {
  it('learns a MAC on a port and looks it up', () => {
    const f = fdb();
    expect(f.lookup(0, ...M1, 0)).toBe(-1);
    f.learn(0, ...M1, 3, 0);
    expect(f.lookup(0, ...M1, 0)).toBe(3);
    expect([f.size, f.learned, f.moves]).toEqual([1, 1, 0]);
    // Seeing it again on the same port is neither a new entry nor a move.
    f.learn(0, ...M1, 3, 10);
    expect([f.size, f.learned, f.moves]).toEqual([1, 1, 0]);
  });

  it('re-learns a station that moved to another port at once, and counts the move', () => {
    const f = fdb();
    f.learn(0, ...M1, 1, 0);
    f.learn(0, ...M1, 2, 5);
    expect(f.lookup(0, ...M1, 5)).toBe(2);
    expect(f.moves).toBe(1);
    expect(f.size).toBe(1);
  });

  it('forgets an entry not seen for ageingSeconds; seeing it refreshes the age', () => {
    const f = fdb(16, 10);
    f.learn(0, ...M1, 1, 0);
    expect(f.lookup(0, ...M1, 9.9 * S)).toBe(1);
    f.learn(0, ...M1, 1, 9.9 * S);
    expect(f.lookup(0, ...M1, 19 * S)).toBe(1);
    expect(f.lookup(0, ...M1, 20 * S)).toBe(-1);
    expect(f.entries(20 * S)).toEqual([]);
    expect(f.sweep(20 * S)).toBe(1);
    expect(f.size).toBe(0);
  });

  it('when full and nothing has aged, does not learn and counts the refusal; aged entries make room', () => {
    const f = fdb(2, 10);
    f.learn(0, ...M1, 1, 0);
    f.learn(0, ...M2, 2, 5 * S);
    f.learn(0, ...M3, 3, 6 * S);
    expect(f.full).toBe(1);
    expect(f.lookup(0, ...M3, 6 * S)).toBe(-1);
    expect(f.lookup(0, ...M1, 6 * S)).toBe(1);
    // M1 ages out at 10 s: the next new station takes its place.
    f.learn(0, ...M3, 3, 11 * S);
    expect(f.full).toBe(1);
    expect(f.lookup(0, ...M3, 11 * S)).toBe(3);
    expect(f.lookup(0, ...M2, 11 * S)).toBe(2);
    expect(f.size).toBe(2);
  });

  it('a flood of new stations into a full table scans it once, not once a station, until an entry can age', () => {
    const f = fdb(64, 10);
    for (let i = 0; i < 64; i++) f.learn(0, 0x0a58, 0x1000 + i, i & 3, 0);
    expect(f.size).toBe(64);
    // 60,000 new source MACs while every entry is fresh: refused, one sweep in all.
    for (let i = 0; i < 60_000; i++) f.learn(0, 0x0bbb, i, 1, 5 * S + i);
    expect(f.full).toBe(60_000);
    expect(f.sweeps).toBe(1);
    // The first entries age at 10 s: the next new station past that sweeps once and is learned.
    f.learn(0, 0x0ccc, 1, 2, 10 * S + 1);
    expect(f.sweeps).toBe(2);
    expect(f.lookup(0, 0x0ccc, 1, 10 * S + 2)).toBe(2);
    expect(f.size).toBe(1);
  });

  it('a bridge with a shorter ageing time is swept when its entries can age, not the others\'', () => {
    const f = new Fdb(4);
    f.setAgeing(0, 300);
    f.setAgeing(1, 5);
    f.learn(0, ...M1, 1, 0);
    f.learn(0, ...M2, 1, 0);
    f.learn(0, ...M3, 1, 0);
    f.learn(0, 0x0a58, 0x0af40199, 3, 0);
    // Full: one sweep finds nothing aged; the earliest entry can age at 300 s.
    f.learn(0, 0x0a58, 0x0af40105, 1, 1 * S);
    expect([f.full, f.sweeps]).toEqual([1, 1]);
    f.flushPort(3);
    // Bridge 1 ages its entries in 5 s: this one can age at 6 s, before the others.
    f.learn(1, 0x0a58, 0x0af40106, 2, 1 * S);
    f.learn(0, 0x0a58, 0x0af40107, 1, 2 * S);
    expect([f.full, f.sweeps]).toEqual([2, 1]);
    f.learn(0, 0x0a58, 0x0af40108, 1, 7 * S);
    expect(f.sweeps).toBe(2);
    expect(f.lookup(0, 0x0a58, 0x0af40108, 7 * S)).toBe(1);
    expect(f.lookup(1, 0x0a58, 0x0af40106, 7 * S)).toBe(-1);
  });

  it('flushPort forgets what was learned on that port only', () => {
    const f = fdb();
    f.learn(0, ...M1, 1, 0);
    f.learn(0, ...M2, 2, 0);
    f.learn(0, ...M3, 1, 0);
    f.flushPort(1);
    expect([f.lookup(0, ...M1, 0), f.lookup(0, ...M2, 0), f.lookup(0, ...M3, 0)]).toEqual([-1, 2, -1]);
    expect(f.size).toBe(1);
  });

  it('keeps bridges apart: one MAC may live on a port of each', () => {
    const f = fdb();
    f.learn(0, ...M1, 1, 0);
    f.learn(1, ...M1, 7, 0);
    expect([f.lookup(0, ...M1, 0), f.lookup(1, ...M1, 0)]).toEqual([1, 7]);
    expect(f.moves).toBe(0);
  });

  it('a static entry neither ages nor moves', () => {
    const f = fdb(16, 10);
    expect(f.addStatic(0, ...M1, 4)).toBe(true);
    f.learn(0, ...M1, 2, 0);
    expect(f.lookup(0, ...M1, 1000 * S)).toBe(4);
    expect(f.moves).toBe(0);
    expect(f.sweep(1000 * S)).toBe(0);
    expect(f.entries(1000 * S)).toEqual([{ bridge: 0, macHi: M1[0], macLo: M1[1], port: 4, ageUs: 0, isStatic: true }]);
  });

  it('lists live entries with their age', () => {
    const f = fdb(16, 10);
    f.learn(0, ...M1, 1, 0);
    f.learn(1, ...M2, 2, 3 * S);
    const e = f.entries(4 * S).sort((x, y) => x.port - y.port);
    expect(e).toEqual([
      { bridge: 0, macHi: M1[0], macLo: M1[1], port: 1, ageUs: 4 * S, isStatic: false },
      { bridge: 1, macHi: M2[0], macLo: M2[1], port: 2, ageUs: 1 * S, isStatic: false },
    ]);
  });
});
