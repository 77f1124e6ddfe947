/**
 * FRAME_META: every declared per-frame field is reset by FramePool.alloc to its declared
 * value, and inherited as declared by a copy (FramePool.clone and share), by each fragment the
 * ip4-fragment stage makes and by the datagram ip4-reassemble puts together. The checks walk
 * the table, so a field added to it is checked on every path without touching this file.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { VirtualClock } from '../../src/core/clock.ts';
import { Carry, FRAME_META, type MetaField } from '../../src/core/frame-meta.ts';
import { FramePool, HEADROOM, SLOT_SIZE } from '../../src/core/frame-pool.ts';
import type { Stage } from '../../src/core/stage.ts';
import { Dataplane } from '../../src/dataplane/dataplane.ts';
import * as F from '../helpers/frames.ts';

type Row = MetaField & { name: (typeof FRAME_META)[number]['name'] };
const ROWS = FRAME_META as readonly Row[];

const ARRAY_OF: Record<string, unknown> = {
  int32: Int32Array, uint32: Uint32Array, uint16: Uint16Array, uint8: Uint8Array, float64: Float64Array,
};

function arr(pool: FramePool, f: Row): { [i: number]: number; length: number } {
  return pool[f.name];
}

/** A value for field `i` no reset value equals: an offset into the slot for REBASE fields. */
function dirtyValue(pool: FramePool, slot: number, f: Row, i: number): number {
  if (f.clone === Carry.REBASE || f.fragment === Carry.REBASE || f.reassemble === Carry.REBASE) return pool.start[slot] + 14 + 4 * i;
  switch (f.kind) {
    case 'uint8':
      return 5 + i;
    case 'uint16':
      return 300 + i;
    case 'uint32':
      return 0x0b000000 + i;
    case 'float64':
      return 1234.5 + i;
    default:
      return 1000 + 7 * i;
  }
}

/** Sets every field of `slot` but start and len to a recognisable value; returns what was set. */
function dirty(pool: FramePool, slot: number, keep: Partial<Record<string, number>> = {}): Map<string, number> {
  const set = new Map<string, number>();
  ROWS.forEach((f, i) => {
    if (f.name === 'start' || f.name === 'len') return;
    const v = keep[f.name] ?? dirtyValue(pool, slot, f, i);
    arr(pool, f)[slot] = v;
    set.set(f.name, v);
  });
  return set;
}

function resetValue(pool: FramePool, slot: number, f: Row): number {
  return f.reset === 'slot' ? slot * pool.slotSize + HEADROOM : f.reset;
}

/** Checks every non-OWN field of `to` against `carry` of what `from` held. */
function expectCarried(pool: FramePool, column: 'clone' | 'fragment' | 'reassemble', before: Map<string, number>, fromStart: number, to: number): void {
  for (const f of ROWS) {
    const c = f[column];
    if (c === Carry.OWN || !before.has(f.name)) continue;
    const got = arr(pool, f)[to];
    const was = before.get(f.name)!;
    const want = c === Carry.COPY ? was : c === Carry.REBASE ? was - fromStart + pool.start[to] : resetValue(pool, to, f);
    expect({ field: f.name, value: got }).toEqual({ field: f.name, value: want });
  }
}

function lab(): Dataplane {
  const yaml = `
node: { name: n }
bridges: [{ name: cni0, address: 10.244.1.1/24 }]
ports:
  - { name: pa, bridge: cni0 }
  - { name: slow, address: 10.9.0.1/24, mtu: 600 }
`;
  return new Dataplane(parseConfig(yaml, 'test'), { clock: new VirtualClock(), poolSize: 64 });
}

/** Runs one stage on `slots` alone and returns what it queued for `next`. */
function runStage(stage: Stage, next: Stage, slots: number[]): number[] {
  for (const s of slots) stage.enqueue(s);
  stage.run();
  const out = [...next.queue.subarray(0, next.queued)];
  next.queued = 0;
  return out;
}

describe('FRAME_META', () => {
  it('declares each field once, and the pool has an array of the declared kind for it', () => {
    const pool = new FramePool(8);
    expect(new Set(ROWS.map((f) => f.name)).size).toBe(ROWS.length);
    for (const f of ROWS) {
      expect(arr(pool, f)).toBeInstanceOf(ARRAY_OF[f.kind] as new () => unknown);
      expect(arr(pool, f).length).toBe(8);
    }
    for (const name of ['ct', 'ctDir', 'l4']) expect(ROWS.map((f) => f.name)).toContain(name);
    expect(ROWS.find((f) => f.name === 'ct')).toMatchObject({ kind: 'int32', reset: -1 });
    expect(ROWS.find((f) => f.name === 'ctDir')).toMatchObject({ kind: 'uint8' });
    expect(ROWS.find((f) => f.name === 'l4')).toMatchObject({ kind: 'int32', reset: 0 });
  });

  it('alloc resets every field to its declared value', () => {
    const pool = new FramePool(2);
    const s = pool.alloc();
    pool.len[s] = 99;
    pool.start[s] = 5;
    dirty(pool, s);
    pool.free(s);
    expect(pool.alloc()).toBe(s);
    for (const f of ROWS) expect({ field: f.name, value: arr(pool, f)[s] }).toEqual({ field: f.name, value: resetValue(pool, s, f) });
    expect(pool.start[s]).toBe(s * SLOT_SIZE + HEADROOM);
  });

  it('clone carries every field as its clone column says', () => {
    const pool = new FramePool(4);
    pool.alloc();
    const s = pool.alloc();
    pool.len[s] = 60;
    const before = dirty(pool, s);
    const c = pool.clone(s);
    expect(c).toBeGreaterThanOrEqual(0);
    expect(pool.start[c]).not.toBe(pool.start[s]);
    expect(pool.len[c]).toBe(60);
    expectCarried(pool, 'clone', before, pool.start[s], c);
  });

  it('share carries every field as the clone column says, over the same bytes', () => {
    const pool = new FramePool(4);
    const s = pool.alloc();
    pool.len[s] = 60;
    const before = dirty(pool, s);
    const c = pool.share(s);
    expect(pool.start[c]).toBe(pool.start[s]);
    expect(pool.len[c]).toBe(60);
    expectCarried(pool, 'clone', before, pool.start[s], c);
    pool.free(c);
    pool.free(s);
    expect(pool.available).toBe(4);
  });

  it('each fragment ip4-fragment makes carries every field as the fragment column says', () => {
    const dp = lab();
    const pool = dp.pool;
    const frame = F.ethernet('02:00:00:00:09:01', '0a:58:0a:f4:01:02', 0x0800, F.ipv4({ src: '10.244.1.2', dst: '10.9.0.7', proto: 17, id: 7 }, F.bytes(1200)));
    const slot = pool.fill(frame, dp.portIndex('pa'));
    const before = dirty(pool, slot, { l3: pool.start[slot] + 14, txIf: dp.ctx.ifs.indexOf('slow') });
    const start = pool.start[slot];
    const frags = runStage(dp.stages.ip4Fragment, dp.stages.ip4Fragment.next.neighbour, [slot]);
    expect(frags.length).toBe(3);
    for (const f of frags) {
      expectCarried(pool, 'fragment', before, start, f);
      pool.free(f);
    }
    expect(pool.available).toBe(pool.capacity);
  });

  it('the datagram ip4-reassemble puts together carries every field of its first fragment as the reassemble column says', () => {
    const dp = lab();
    const pool = dp.pool;
    const payload = F.bytes(48);
    const frag = (off: number, mf: boolean) =>
      F.ethernet('0a:58:0a:f4:01:01', '0a:58:0a:f4:01:02', 0x0800,
        F.ipv4({ src: '10.244.1.2', dst: '10.244.1.1', proto: 17, id: 9, mf, fragOffset: off }, payload.slice(off, off + 24)));
    const first = pool.fill(frag(0, true), dp.portIndex('pa'));
    const second = pool.fill(frag(24, false), dp.portIndex('pa'));
    const before = dirty(pool, first, { l3: pool.start[first] + 14 });
    dirty(pool, second, { l3: pool.start[second] + 14 });
    const start = pool.start[first];
    const out = runStage(dp.stages.ip4Reassemble, dp.stages.ip4Reassemble.next.local, [first, second]);
    expect(out.length).toBe(1);
    expectCarried(pool, 'reassemble', before, start, out[0]);
    expect(pool.l4[out[0]]).toBe(pool.l3[out[0]] + 20);
    pool.free(out[0]);
    expect(pool.available).toBe(pool.capacity);
  });
});
