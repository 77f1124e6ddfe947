/**
 * LatencyProbe on a fake clock: a wake-up's segments come out in order with their
 * percentiles and histogram buckets; wake-ups that read nothing are not kept, those that
 * wrote nothing are counted apart; only the first transmit of a run is timed; the ring keeps
 * the last `capacity` records; NODEPLANE_LATENCY_FILE without a clock is refused with why.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { BUCKETS_US, LatencyProbe, POINTS } from '../../src/ports/latency-probe.ts';

/** A clock set by hand: now, the last poll, and the last read() (which the fake places 1 and 2 µs after `entry`). */
function fakeClock(): { clock: { nowNs(): number; lastPollNs(): number; lastReadNs(end: boolean): number }; at: (ns: number) => void; poll: (ns: number) => void; readAt: (ns: number) => void } {
  let now = 0;
  let poll = 0;
  let read = 0;
  return {
    clock: { nowNs: () => now, lastPollNs: () => poll, lastReadNs: (end) => read + (end ? 1000 : 0) },
    readAt: (ns) => {
      read = ns;
    },
    at: (ns) => {
      now = ns;
    },
    poll: (ns) => {
      poll = ns;
    },
  };
}

/** One wake-up whose points are `us` µs apart (poll at `start`). */
function wakeup(p: LatencyProbe, c: ReturnType<typeof fakeClock>, start: number, gapsUs: number[], read = 1, write = true): void {
  let t = start;
  c.poll(t);
  t += gapsUs[0] * 1000;
  c.at(t);
  p.wake();
  c.readAt(t + 1000);
  t += gapsUs[1] * 1000;
  c.at(t);
  p.read(read);
  if (read <= 0) return;
  t += gapsUs[2] * 1000;
  c.at(t);
  p.runStart();
  if (write) {
    t += gapsUs[3] * 1000;
    c.at(t);
    p.writeStart();
    t += gapsUs[4] * 1000;
    c.at(t);
    p.writeEnd();
    // A second transmit in the same run is not what is timed.
    c.at(t + 999_000);
    p.writeStart();
    p.writeEnd();
  }
  t += gapsUs[5] * 1000;
  c.at(t);
  p.runEnd();
}

describe('LatencyProbe', () => {
  afterEach(() => {
    delete process.env.NODEPLANE_LATENCY_FILE;
  });

  it('times each segment of the kept wake-ups, in order, with percentiles and buckets', () => {
    const c = fakeClock();
    const p = new LatencyProbe(c.clock, 1000);
    for (let i = 0; i < 100; i++) wakeup(p, c, 1e9 + i * 1e7, [3, 15, 4, 30 + i, 40, 1]);
    wakeup(p, c, 3e9, [3, 15, 4, 0, 0, 1], 0); // read nothing: not kept
    wakeup(p, c, 4e9, [3, 15, 4, 0, 0, 1], 1, false); // wrote nothing: counted apart
    const s = p.summary();
    expect(s.wakeups).toBe(100);
    expect(s.withoutWrite).toBe(1);
    expect(s.segments.map((x) => `${x.from}-${x.to}`)).toEqual(POINTS.slice(0, -1).map((f, i) => `${f}-${POINTS[i + 1]}`));
    const [pollEntry, entryReadSys, readSys, readSysRead, , graph, write] = s.segments;
    expect(pollEntry.p50Us).toBe(3);
    // entry → read() 1 µs, the read() 1 µs, back in JavaScript 13 µs later.
    expect(entryReadSys.maxUs).toBe(1);
    expect(readSys.p50Us).toBe(1);
    expect(readSysRead.maxUs).toBe(13);
    expect(graph.p50Us).toBe(80); // 30 + 50th of 0..99
    expect(graph.p99Us).toBe(129);
    expect(graph.maxUs).toBe(129);
    expect(write.p90Us).toBe(40);
    // 30..129 µs: 21 in (20, 50], 50 in (50, 100], 29 in (100, 200] (a bound is in its bucket).
    const k50 = BUCKETS_US.indexOf(50);
    expect(graph.histogram[k50]).toBe(21);
    expect(graph.histogram[k50 + 1]).toBe(50);
    expect(graph.histogram[k50 + 2]).toBe(29);
    expect(graph.histogram.reduce((a, b) => a + b, 0)).toBe(100);
    expect(s.total.p50Us).toBe(3 + 15 + 4 + 80 + 40);
  });

  it('keeps the last capacity records', () => {
    const c = fakeClock();
    const p = new LatencyProbe(c.clock, 10);
    for (let i = 0; i < 25; i++) wakeup(p, c, 1e9 + i * 1e7, [i, 1, 1, 1, 1, 1]);
    const s = p.summary();
    expect(s.wakeups).toBe(10);
    expect(s.segments[0].maxUs).toBe(24);
    expect(s.segments[0].p50Us).toBe(20);
  });

  it('is made from NODEPLANE_LATENCY_FILE only, and only with a clock', () => {
    expect(LatencyProbe.fromEnv(fakeClock().clock)).toEqual({ probe: null, reason: null });
    process.env.NODEPLANE_LATENCY_FILE = '/nonexistent/latency.json';
    const none = LatencyProbe.fromEnv({});
    expect(none.probe).toBeNull();
    expect('reason' in none && none.reason).toMatch(/no clock/);
    const made = LatencyProbe.fromEnv(fakeClock().clock);
    expect(made.probe).toBeInstanceOf(LatencyProbe);
  });
});
