/**
 * FramePool: slots come from a free stack with fresh metadata, go back with free, clone copies
 * bytes and metadata (l3 rebased into the copy), share makes a copy over the same bytes whose
 * owner slot comes back only after every holder is freed, and an exhausted pool answers -1.
 */
import { describe, expect, it } from 'vitest';
import { FramePool, HEADROOM, MAX_FRAME, NO_PORT, SLOT_SIZE } from '../../src/core/frame-pool.ts';

/** Sets every metadata field of `slot` to a recognisable value. */
function dirty(pool: FramePool, slot: number): void {
  pool.len[slot] = 77;
  pool.inPort[slot] = 5;
  pool.rxIf[slot] = 6;
  pool.l3[slot] = pool.start[slot] + 14;
  pool.txIf[slot] = 7;
  pool.nextHop[slot] = 0xc0a83201;
  pool.outPort[slot] = 8;
  pool.icmpError[slot] = 0x0b000000;
}

describe('FramePool', () => {
  it('hands out distinct slots with their frame start after the headroom', () => {
    const pool = new FramePool(4);
    const slots = [pool.alloc(), pool.alloc(), pool.alloc(), pool.alloc()];
    expect(new Set(slots).size).toBe(4);
    for (const s of slots) {
      expect(s).toBeGreaterThanOrEqual(0);
      expect(s).toBeLessThan(4);
      expect(pool.start[s]).toBe(s * SLOT_SIZE + HEADROOM);
    }
    expect(pool.available).toBe(0);
  });

  it('returns -1 from alloc, clone and fill when exhausted, and works again after a free', () => {
    const pool = new FramePool(2);
    const a = pool.alloc();
    const b = pool.alloc();
    expect(pool.alloc()).toBe(-1);
    expect(pool.clone(a)).toBe(-1);
    expect(pool.fill(Buffer.alloc(60), 0)).toBe(-1);
    expect(pool.available).toBe(0);
    pool.free(b);
    expect(pool.available).toBe(1);
    expect(pool.alloc()).toBe(b);
    expect(pool.alloc()).toBe(-1);
  });

  it('resets the metadata of a reused slot', () => {
    const pool = new FramePool(1);
    const s = pool.alloc();
    dirty(pool, s);
    pool.free(s);
    const again = pool.alloc();
    expect(again).toBe(s);
    expect([pool.len[s], pool.inPort[s], pool.rxIf[s], pool.l3[s], pool.txIf[s], pool.nextHop[s] >>> 0, pool.outPort[s], pool.icmpError[s] >>> 0]).toEqual([
      0,
      NO_PORT,
      -1,
      0,
      -1,
      0,
      -1,
      0,
    ]);
    expect(pool.start[s]).toBe(s * SLOT_SIZE + HEADROOM);
  });

  it('fill copies the bytes and records the port', () => {
    const pool = new FramePool(4);
    const bytes = Buffer.from([...Array(60).keys()]);
    const s = pool.fill(bytes, 3);
    expect(pool.view(s)).toEqual(bytes);
    expect([pool.len[s], pool.inPort[s]]).toEqual([60, 3]);
    bytes[0] = 0xee;
    expect(pool.view(s)[0]).toBe(0);
  });

  it('fill refuses a frame longer than a slot holds after the headroom', () => {
    const pool = new FramePool(2);
    expect(pool.fill(Buffer.alloc(MAX_FRAME + 1), 0)).toBe(-1);
    expect(pool.available).toBe(2);
    expect(pool.fill(Buffer.alloc(MAX_FRAME), 0)).toBeGreaterThanOrEqual(0);
  });

  it('clone copies the bytes and every metadata field, with l3 pointing into the copy', () => {
    const pool = new FramePool(4);
    const s = pool.fill(Buffer.from([...Array(100).keys()]), 2);
    dirty(pool, s);
    pool.len[s] = 100;
    const c = pool.clone(s);
    expect(c).not.toBe(s);
    expect(pool.view(c)).toEqual(pool.view(s));
    expect(pool.l3[c] - pool.start[c]).toBe(14);
    expect([pool.len[c], pool.inPort[c], pool.rxIf[c], pool.txIf[c], pool.nextHop[c] >>> 0, pool.outPort[c], pool.icmpError[c] >>> 0]).toEqual([
      100,
      5,
      6,
      7,
      0xc0a83201,
      8,
      0x0b000000,
    ]);
    // The copy is independent of the original.
    pool.data[pool.start[c]] = 0xff;
    expect(pool.view(s)[0]).toBe(0);
  });

  it('clone of a frame whose start moved (decap, encap) copies from the moved start', () => {
    const pool = new FramePool(4);
    const s = pool.fill(Buffer.from([...Array(64).keys()]), 0);
    pool.start[s] += 14;
    pool.len[s] -= 14;
    pool.l3[s] = pool.start[s];
    const c = pool.clone(s);
    expect(pool.view(c)).toEqual(Buffer.from([...Array(50).keys()].map((i) => i + 14)));
    expect(pool.l3[c]).toBe(pool.start[c]);
  });

  it('an l3 of 0 (not set) stays 0 in the clone', () => {
    const pool = new FramePool(2);
    const s = pool.fill(Buffer.alloc(20), 0);
    expect(pool.l3[pool.clone(s)]).toBe(0);
  });

  it('share gives a frame of its own metadata over the same bytes, copying none', () => {
    const pool = new FramePool(4);
    const s = pool.fill(Buffer.from([...Array(100).keys()]), 2);
    dirty(pool, s);
    pool.len[s] = 100;
    pool.gsoType[s] = 1;
    pool.gsoSize[s] = 1448;
    const c = pool.share(s);
    expect(c).not.toBe(s);
    expect(pool.start[c]).toBe(pool.start[s]);
    expect(pool.l3[c]).toBe(pool.l3[s]);
    expect(pool.view(c)).toEqual(pool.view(s));
    expect([pool.len[c], pool.inPort[c], pool.rxIf[c], pool.txIf[c], pool.nextHop[c] >>> 0, pool.outPort[c], pool.icmpError[c] >>> 0]).toEqual([
      100, 5, 6, 7, 0xc0a83201, 8, 0x0b000000,
    ]);
    expect([pool.gsoType[c], pool.gsoSize[c]]).toEqual([1, 1448]);
    expect([pool.owner[c], pool.owner[s]]).toEqual([s, -1]);
    expect([pool.isShared(c), pool.isShared(s)]).toEqual([true, true]);
    // Metadata is per frame: setting the copy's out port leaves the original's alone.
    pool.outPort[c] = 1;
    expect(pool.outPort[s]).toBe(8);
  });

  it("the original's slot is reusable only after it and every copy sharing its bytes are freed", () => {
    const pool = new FramePool(4);
    const o = pool.fill(Buffer.alloc(60, 7), 0);
    const c1 = pool.share(o);
    const c2 = pool.share(o);
    expect(pool.available).toBe(1);
    pool.free(o); // the original's holder is done; the copies still read its bytes
    expect(pool.available).toBe(1);
    pool.free(c1); // c1's own slot comes back, o's bytes are still held by c2
    expect(pool.available).toBe(2);
    const taken = [pool.alloc(), pool.alloc()];
    expect(taken).not.toContain(o);
    expect(pool.alloc()).toBe(-1);
    expect(pool.view(c2)).toEqual(Buffer.alloc(60, 7));
    pool.free(c2); // the last holder: c2 and o come back
    expect(pool.available).toBe(2);
    expect([pool.alloc(), pool.alloc()].sort()).toEqual([c2, o].sort());
    expect(pool.isShared(o)).toBe(false);
    for (const s of [...taken, c2, o]) pool.free(s);
    expect(pool.available).toBe(4);
  });

  it('the order of freeing does not matter, and a copy of a copy holds the first owner', () => {
    const pool = new FramePool(4);
    const o = pool.fill(Buffer.alloc(60, 1), 0);
    const c1 = pool.share(o);
    const c2 = pool.share(c1);
    expect(pool.owner[c2]).toBe(o);
    pool.free(c2);
    pool.free(c1);
    expect(pool.available).toBe(3);
    expect(pool.isShared(o)).toBe(false);
    pool.free(o);
    expect(pool.available).toBe(4);
    // A reused slot is plain again: alloc, free, back at once.
    const again = pool.alloc();
    expect(pool.owner[again]).toBe(-1);
    pool.free(again);
    expect(pool.available).toBe(4);
  });

  it('share answers -1 when exhausted and leaves the original unshared', () => {
    const pool = new FramePool(1);
    const o = pool.fill(Buffer.alloc(60), 0);
    expect(pool.share(o)).toBe(-1);
    expect(pool.isShared(o)).toBe(false);
    pool.free(o);
    expect(pool.available).toBe(1);
  });

  it('clone of a shared frame copies the bytes into a slot of its own', () => {
    const pool = new FramePool(4);
    const o = pool.fill(Buffer.from([...Array(60).keys()]), 0);
    const c = pool.share(o);
    const k = pool.clone(c);
    expect(pool.view(k)).toEqual(pool.view(o));
    expect(pool.isShared(k)).toBe(false);
    pool.data[pool.start[k]] = 0xff;
    expect(pool.view(o)[0]).toBe(0);
    for (const s of [o, c, k]) pool.free(s);
    expect(pool.available).toBe(4);
  });

  it('take lends slots without resetting them; untake puts back the unused ones so the same come next', () => {
    const pool = new FramePool(8);
    const s = pool.alloc();
    pool.inPort[s] = 3;
    pool.free(s);
    const out = new Int32Array(4);
    pool.take(out, 4);
    expect([...out]).toEqual([s, 1, 2, 3]);
    expect(pool.available).toBe(4);
    // Untouched until reset, which gives a slot what alloc would.
    expect(pool.inPort[s]).toBe(3);
    pool.reset(s);
    expect([pool.inPort[s], pool.start[s], pool.len[s]]).toEqual([-1, s * pool.slotSize + 128, 0]);
    pool.untake(out, 1, 4);
    expect(pool.available).toBe(7);
    expect([pool.alloc(), pool.alloc(), pool.alloc()]).toEqual([1, 2, 3]);
  });
});
