/**
 * Graph and Stage: the built graph verifies, every declared next is a stage of the graph,
 * a dispatch drains every queue, verify() refuses an unconnected output, and a path that
 * loops is cut at the round limit with every frame it held dropped, counted and traced.
 */
import { dropReasons } from '../../src/core/drop-reason.ts';
import { describe, expect, it } from 'vitest';
import { FramePool } from '../../src/core/frame-pool.ts';
import { Graph, MAX_ROUNDS, ROUND_LIMIT_REASON } from '../../src/core/graph.ts';
import { Stage } from '../../src/core/stage.ts';
import type { Tracer } from '../../src/core/trace.ts';
import { formatStats } from '../../src/admin/format.ts';
import { statsState } from '../../src/admin/state.ts';
import { TokenBucket } from '../../src/core/token-bucket.ts';
import { A, B, BCAST, GW, Harness, introduce, pingFrame, udpFrame, arpFrame } from './stage-harness.test.ts';

class Pass extends Stage<'out'> {
  readonly nextNames = ['out'] as const;
  readonly dropReasons = dropReasons([['test.odd-slot', 'odd slot']]);
  constructor(
    readonly name: string,
    pool: FramePool,
  ) {
    super(pool);
  }
  protected process(slots: Int32Array, n: number): void {
    for (let i = 0; i < n; i++) {
      if (slots[i] % 2 === 1) this.drop(slots[i], 0);
      else this.to(this.out.out, slots[i]);
    }
  }
}

class Sink extends Stage<never> {
  readonly name = 'sink';
  readonly nextNames = [] as const;
  readonly dropReasons = [];
  seen: number[] = [];
  protected process(slots: Int32Array, n: number): void {
    for (let i = 0; i < n; i++) {
      this.seen.push(slots[i]);
      this.consume(slots[i]);
    }
  }
}

/**
 * Sends a frame around (`out`) as many times as its `len` says, one lap per pass, then on to
 * `done`: a frame with a large len loops for longer than any dispatch allows.
 */
class Lap extends Stage<'out' | 'done'> {
  readonly nextNames = ['out', 'done'] as const;
  readonly dropReasons = [];
  constructor(
    readonly name: string,
    pool: FramePool,
  ) {
    super(pool);
  }
  protected process(slots: Int32Array, n: number): void {
    const len = this.pool.len;
    for (let i = 0; i < n; i++) {
      const s = slots[i];
      if (len[s]-- > 0) this.to(this.out.out, s);
      else this.to(this.out.done, s);
    }
  }
}

/** Records the drops a tracer is told about. */
function dropRecorder(): { tracer: Tracer; drops: string[] } {
  const drops: string[] = [];
  const none = (): void => {};
  return {
    drops,
    tracer: { received: none, derived: none, step: none, consumed: none, note: none, sent: none, dropped: (at, reason, slot) => drops.push(`${at} s${slot}: ${reason.id}`) },
  };
}

describe('Graph', () => {
  it('the dataplane graph verifies and every declared next is a stage of the graph', () => {
    const h = new Harness();
    const g = h.dp.graph;
    expect(() => g.verify()).not.toThrow();
    const names = new Set(g.stages.map((s) => s.name));
    expect(names.size).toBe(g.stages.length);
    const fed = new Set<string>();
    for (const s of g.stages) {
      for (const n of s.nextNames) {
        const t = (s.next as Record<string, Stage | undefined>)[n];
        expect(t, `${s.name}.${n}`).toBeDefined();
        expect(g.stages).toContain(t);
        fed.add(t!.name);
      }
      expect(s.drops.length).toBe(s.dropReasons.length);
    }
    // Every stage but the first is fed by some other stage.
    for (const s of g.stages.slice(1)) expect(fed.has(s.name), s.name).toBe(true);
    expect(g.describe().length).toBe(g.stages.reduce((n, s) => n + s.nextNames.length, 0));
  });

  it('verify refuses a stage whose output is not connected, or connected outside the graph', () => {
    const pool = new FramePool(4);
    const g = new Graph();
    const a = g.add(new Pass('a', pool));
    expect(() => g.verify()).toThrow(/a: next 'out' is not connected/);
    const stranger = new Sink(pool);
    stranger.initCounters();
    a.connect({ out: stranger });
    expect(() => g.verify()).toThrow(/not in the graph/);
    expect(() => g.add(new Pass('a', pool))).toThrow(/duplicate/);
  });

  it('dispatch drains every queue, counting packets and drops per stage', () => {
    const pool = new FramePool(16);
    const g = new Graph();
    const a = g.add(new Pass('a', pool));
    const sink = g.add(new Sink(pool));
    a.connect({ out: sink });
    g.verify();
    for (let i = 0; i < 10; i++) a.enqueue(pool.alloc());
    expect(g.dispatch()).toBe(15);
    expect(g.stages.every((s) => s.queued === 0)).toBe(true);
    expect(sink.seen).toEqual([0, 2, 4, 6, 8]);
    expect(a.counters()).toEqual({ packets: 10, drops: { 'test.odd-slot': 5 }, events: {} });
    expect(pool.available).toBe(16);
    a.resetCounters();
    expect(a.counters()).toEqual({ packets: 0, drops: {}, events: {} });
  });

  it('a stage that feeds itself is cut at the round limit: every frame dropped, counted, traced, the pool whole', () => {
    const pool = new FramePool(16);
    const g = new Graph();
    const loop = g.add(new Lap('loop', pool));
    const sink = g.add(new Sink(pool));
    loop.connect({ out: loop, done: sink });
    g.verify();
    const { tracer, drops } = dropRecorder();
    g.setTracer(tracer);
    const looping: number[] = [];
    for (let i = 0; i < 5; i++) {
      const s = pool.alloc();
      pool.len[s] = 1_000_000;
      looping.push(s);
      loop.enqueue(s);
    }
    expect(g.dispatch()).toBe(5 * MAX_ROUNDS);
    expect(g.roundLimitDrops).toBe(5);
    expect(g.stages.map((s) => s.queued)).toEqual([0, 0]);
    expect(pool.available).toBe(16);
    expect(sink.seen).toEqual([]);
    expect(drops).toEqual(looping.map((s) => `loop s${s}: ${ROUND_LIMIT_REASON.id}`));

    // The next dispatch is an ordinary one: frames that loop a few times arrive, nothing is cut.
    g.setTracer(null);
    for (let i = 0; i < 4; i++) {
      const s = pool.alloc();
      pool.len[s] = 3;
      loop.enqueue(s);
    }
    expect(g.dispatch()).toBe(4 * 4 + 4);
    expect(sink.seen).toHaveLength(4);
    expect(g.roundLimitDrops).toBe(5);
    expect(pool.available).toBe(16);
  });

  it('a two-stage cycle is cut the same way, each frame dropped at the stage it waited in', () => {
    const pool = new FramePool(8);
    const g = new Graph();
    const a = g.add(new Lap('a', pool));
    const b = g.add(new Lap('b', pool));
    const sink = g.add(new Sink(pool));
    a.connect({ out: b, done: sink });
    b.connect({ out: a, done: sink });
    g.verify();
    const { tracer, drops } = dropRecorder();
    g.setTracer(tracer);
    for (let i = 0; i < 3; i++) {
      const s = pool.alloc();
      pool.len[s] = 1_000_000;
      a.enqueue(s);
    }
    // Also a frame that finishes within the limit: it is not touched.
    const quick = pool.alloc();
    pool.len[quick] = 2;
    a.enqueue(quick);
    g.dispatch();
    expect(g.roundLimitDrops).toBe(3);
    expect(sink.seen).toEqual([quick]);
    expect(drops).toHaveLength(3);
    expect(drops.every((d) => /^[ab] s\d+: /.test(d) && d.endsWith(ROUND_LIMIT_REASON.id))).toBe(true);
    expect(g.stages.every((s) => s.queued === 0)).toBe(true);
    expect(pool.available).toBe(8);
  });

  it('show stats prints the round-limit count', () => {
    const h = new Harness();
    expect(formatStats(statsState(h.dp))).toContain('graph round limit: 0 frames dropped');
    h.dp.graph.roundLimitDrops = 7;
    expect(statsState(h.dp).roundLimitDrops).toBe(7);
    expect(formatStats(statsState(h.dp))).toContain('graph round limit: 7 frames dropped');
  });

  it('after mixed traffic through the dataplane no stage holds a frame and no slot is lost', () => {
    const h = new Harness();
    introduce(h, A);
    h.rxBatch('pa', [
      pingFrame({ from: A, toMac: GW.mac, dst: GW.ip }),
      udpFrame({ from: A, toMac: GW.mac, dst: '203.0.113.5' }),
      udpFrame({ from: A, toMac: GW.mac, dst: '10.200.1.1', dataLen: 1400 }),
      udpFrame({ from: A, toMac: GW.mac, dst: '10.9.0.50', ttl: 1 }),
      udpFrame({ from: A, toMac: B.mac, dst: B.ip }),
      udpFrame({ from: A, toMac: BCAST, dst: '10.244.1.255' }),
      arpFrame({ ethDst: BCAST, ethSrc: A.mac, op: 1, sha: A.mac, spa: A.ip, tpa: '10.244.1.9' }),
    ]);
    expect(h.dp.graph.stages.filter((s) => s.queued > 0)).toEqual([]);
    h.settle();
    h.checkClean();
    // Everything the batch asked for happened: a reply, a forward, two fragments, an error.
    expect(h.take('up')).toHaveLength(1);
    expect(h.take('slow')).toHaveLength(2);
  });
});

describe('TokenBucket', () => {
  it('allows a burst, then the rate', () => {
    const tb = new TokenBucket(2, 3);
    expect([tb.take(0), tb.take(0), tb.take(0), tb.take(0)]).toEqual([true, true, true, false]);
    expect(tb.take(400_000)).toBe(false);
    expect(tb.take(500_000)).toBe(true);
    expect(tb.take(500_000)).toBe(false);
    // A long pause refills only up to the burst.
    expect([0, 1, 2, 3].map(() => tb.take(100_000_000))).toEqual([true, true, true, false]);
  });
});
