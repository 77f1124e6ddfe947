/**
 * NeighbourTable as a table: entries, the bounded per-entry queue (oldest pushed out), drain
 * order, timers, and collection of dead entries.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_NEIGHBOUR_TIMERS, NeighbourTable, NeighState } from '../../src/tables/neighbour-table.ts';

const S = 1_000_000;

describe('NeighbourTable', () => {
  it('creates an entry once per (interface, address), in state NONE', () => {
    const t = new NeighbourTable(8);
    const id = t.create(1, 0x0af40102, 5);
    expect(t.create(1, 0x0af40102, 6)).toBe(id);
    expect(t.find(1, 0x0af40102)).toBe(id);
    expect(t.find(2, 0x0af40102)).toBe(-1);
    expect([t.state[id], t.ifIndexOf(id), t.ipOf(id), t.size]).toEqual([NeighState.NONE, 1, 0x0af40102, 1]);
  });

  it('update records the MAC and state and clears the timer', () => {
    const t = new NeighbourTable(8);
    const id = t.create(0, 1, 0);
    t.setDeadline(id, 10);
    t.update(id, 0x0a58, 0x0af40102, NeighState.REACHABLE, 7);
    expect([t.macHi[id], t.macLo[id], t.state[id], t.confirmedUs[id], t.deadlineUs[id]]).toEqual([0x0a58, 0x0af40102, NeighState.REACHABLE, 7, 0]);
  });

  it('holds queueLen packets; the next one pushes the oldest out; drain gives them oldest first', () => {
    const t = new NeighbourTable(8, { ...DEFAULT_NEIGHBOUR_TIMERS, queueLen: 3 });
    const id = t.create(0, 1, 0);
    expect([t.enqueue(id, 10), t.enqueue(id, 11), t.enqueue(id, 12)]).toEqual([-1, -1, -1]);
    expect(t.enqueue(id, 13)).toBe(10);
    expect(t.enqueue(id, 14)).toBe(11);
    const out: number[] = [];
    t.drain(id, (s) => out.push(s));
    expect(out).toEqual([12, 13, 14]);
    expect(t.queued[id]).toBe(0);
    t.drain(id, (s) => out.push(s));
    expect(out).toHaveLength(3);
  });

  it('queues of different entries do not mix', () => {
    const t = new NeighbourTable(8, { ...DEFAULT_NEIGHBOUR_TIMERS, queueLen: 2 });
    const a = t.create(0, 1, 0);
    const b = t.create(0, 2, 0);
    t.enqueue(a, 1);
    t.enqueue(b, 2);
    t.enqueue(a, 3);
    const got: number[] = [];
    t.drain(b, (s) => got.push(s));
    t.drain(a, (s) => got.push(s));
    expect(got).toEqual([2, 1, 3]);
  });

  it('runDue fires each due timer once, in time, and tracks the next deadline', () => {
    const t = new NeighbourTable(8);
    const a = t.create(0, 1, 0);
    const b = t.create(0, 2, 0);
    t.setDeadline(a, 2 * S);
    t.setDeadline(b, 5 * S);
    expect(t.nextDeadline()).toBe(2 * S);
    const fired: number[] = [];
    t.runDue(1 * S, (id) => fired.push(id));
    expect(fired).toEqual([]);
    t.runDue(2 * S, (id) => fired.push(id));
    expect(fired).toEqual([a]);
    expect(t.nextDeadline()).toBe(5 * S);
    // A timer may re-arm itself from inside fire.
    t.runDue(5 * S, (id) => {
      fired.push(id);
      t.setDeadline(id, 6 * S);
    });
    expect(fired).toEqual([a, b]);
    expect(t.nextDeadline()).toBe(6 * S);
    t.runDue(6 * S, (id) => fired.push(id));
    expect(fired).toEqual([a, b, b]);
    expect(t.nextDeadline()).toBe(Infinity);
  });

  it('collects FAILED and long-unused STALE entries, never ones with waiting packets', () => {
    const timers = { ...DEFAULT_NEIGHBOUR_TIMERS, gcStaleUs: 60 * S };
    const t = new NeighbourTable(8, timers);
    const failed = t.create(0, 1, 0);
    t.state[failed] = NeighState.FAILED;
    const stale = t.create(0, 2, 0);
    t.update(stale, 1, 2, NeighState.STALE, 0);
    const fresh = t.create(0, 3, 0);
    t.update(fresh, 1, 3, NeighState.STALE, 0);
    t.usedUs[fresh] = 30 * S;
    const waiting = t.create(0, 4, 0);
    t.state[waiting] = NeighState.FAILED;
    t.enqueue(waiting, 9);
    const perm = t.create(0, 5, 0);
    t.update(perm, 1, 5, NeighState.PERMANENT, 0);
    expect(t.collect(61 * S)).toBe(2);
    expect([t.find(0, 1), t.find(0, 2)]).toEqual([-1, -1]);
    expect([t.find(0, 3), t.find(0, 4), t.find(0, 5)]).toEqual([fresh, waiting, perm]);
  });

  it('when full of live entries, create makes room from dead ones, else returns -1 and counts', () => {
    const t = new NeighbourTable(2);
    const a = t.create(0, 1, 0);
    t.update(a, 1, 1, NeighState.REACHABLE, 0);
    const b = t.create(0, 2, 0);
    t.update(b, 1, 2, NeighState.PERMANENT, 0);
    expect(t.create(0, 3, 0)).toBe(-1);
    expect([t.full, t.collections]).toEqual([1, 1]);
    t.state[a] = NeighState.FAILED;
    // A collection that freed nothing is not tried again for a second: refused at once.
    expect(t.create(0, 3, 0.5 * S)).toBe(-1);
    expect([t.full, t.collections]).toEqual([2, 1]);
    expect(t.create(0, 3, 1 * S)).toBe(a);
    expect(t.find(0, 1)).toBe(-1);
    expect(t.collections).toBe(2);
  });

  it('a flood of new neighbours into a full table of live entries costs one scan a second, not one each', () => {
    const t = new NeighbourTable(64);
    for (let i = 0; i < 64; i++) t.update(t.create(0, 0x0a000000 + i, 0), 1, i, NeighState.REACHABLE, 0);
    for (let i = 0; i < 60_000; i++) expect(t.create(1, 0x0b000000 + i, 2 * S + i)).toBe(-1);
    // 60,000 attempts over 60 ms: one collection.
    expect(t.collections).toBe(1);
    expect(t.full).toBe(60_000);
  });
});
