/**
 * LatencyProbe: where the time goes between a TAP becoming readable and the frames it held
 * being written out, per wake-up, for `nodeplane run` with NODEPLANE_LATENCY_FILE set (see
 * `fromEnv`). Off, it does not exist: TAP ports test one null per wake-up and per transmit.
 *
 * A wake-up that reads frames is one record of timestamps on the addon's clock (uv_hrtime,
 * ns): `poll`, when libuv's readiness callback began in C (before the call into JavaScript);
 * `entry`, when the port's JavaScript callback began; `readSys` and `readSysEnd`, around the
 * first `read()` system call of that round, in C; `read`, when the first read round returned
 * to JavaScript; `runStart` and `runEnd`, around the first round's graph run; `writeStart` and
 * `writeEnd`, around the first transmit the run made (a TAP write is synchronous: the
 * frames are in the receiving kernel when it returns). Only the first round of a wake-up is
 * timed: a ping or a request is one frame. Records go into a preallocated ring (the last
 * `capacity`), so nothing is allocated per wake-up.
 *
 * The report (`summary`) gives, for each segment between consecutive points, the median,
 * 90th and 99th percentiles and maximum in µs and a histogram on a log scale, over the
 * wake-ups that wrote something; `write(path)` puts it in a file as JSON, which the e2e
 * bench reads.
 */
import { writeFileSync } from 'node:fs';

/** The timestamps of a record, in order. */
export const POINTS = ['poll', 'entry', 'readSys', 'readSysEnd', 'read', 'runStart', 'writeStart', 'writeEnd', 'runEnd'] as const;
const FIELDS = POINTS.length;
const P_POLL = 0;
const P_ENTRY = 1;
const P_READ_SYS = 2;
const P_READ_SYS_END = 3;
const P_READ = 4;
const P_RUN_START = 5;
const P_WRITE_START = 6;
const P_WRITE_END = 7;
const P_RUN_END = 8;

/** Histogram bucket upper bounds, µs (a last bucket takes the rest). */
export const BUCKETS_US = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];

/** What the probe needs from the TAP addon: its clock, when the last wake-up began, and when its last batch's first read() began and returned. */
export interface ProbeClock {
  nowNs(): number;
  lastPollNs(): number;
  lastReadNs(end: boolean): number;
}

export interface SegmentSummary {
  from: string;
  to: string;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  maxUs: number;
  /** Counts per bucket of BUCKETS_US, then one for everything above the last bound. */
  histogram: number[];
}

export interface LatencySummary {
  /** Wake-ups recorded that wrote something (the ones summarised). */
  wakeups: number;
  /** Wake-ups that read frames but wrote nothing in their first round (ARP absorbed, say). */
  withoutWrite: number;
  bucketsUs: number[];
  segments: SegmentSummary[];
  /** From the readiness callback to the end of the first write. */
  total: SegmentSummary;
}

export class LatencyProbe {
  private readonly records: Float64Array;
  private count = 0;
  /** The record being filled (index into the ring), or -1 between wake-ups. */
  private current = -1;

  constructor(
    private readonly clock: ProbeClock,
    readonly capacity = 100_000,
  ) {
    this.records = new Float64Array(capacity * FIELDS);
  }

  /** The port's callback began: takes a record, stamps `poll` and `entry`. */
  wake(): void {
    const at = (this.count % this.capacity) * FIELDS;
    const r = this.records;
    r[at + P_POLL] = this.clock.lastPollNs();
    r[at + P_ENTRY] = this.clock.nowNs();
    for (let f = P_READ_SYS; f < FIELDS; f++) r[at + f] = 0;
    this.current = at;
  }

  /** The first read round returned `n` frames (a wake-up that read none is not kept). */
  read(n: number): void {
    if (this.current < 0) return;
    if (n <= 0) {
      this.current = -1;
      return;
    }
    const r = this.records;
    const at = this.current;
    r[at + P_READ] = this.clock.nowNs();
    r[at + P_READ_SYS] = this.clock.lastReadNs(false);
    r[at + P_READ_SYS_END] = this.clock.lastReadNs(true);
  }

  runStart(): void {
    if (this.current >= 0) this.records[this.current + P_RUN_START] = this.clock.nowNs();
  }

  /** Around a transmit: only the first of the wake-up's first run is kept. */
  writeStart(): void {
    if (this.current >= 0 && this.records[this.current + P_WRITE_START] === 0) this.records[this.current + P_WRITE_START] = this.clock.nowNs();
  }

  writeEnd(): void {
    if (this.current >= 0 && this.records[this.current + P_WRITE_END] === 0) this.records[this.current + P_WRITE_END] = this.clock.nowNs();
  }

  /** The first run ended: the record is complete. */
  runEnd(): void {
    if (this.current < 0) return;
    this.records[this.current + P_RUN_END] = this.clock.nowNs();
    this.current = -1;
    this.count++;
  }

  /** Percentiles and histograms of each segment (allocates: call it at the end). */
  summary(): LatencySummary {
    const n = Math.min(this.count, this.capacity);
    const kept: number[] = [];
    let withoutWrite = 0;
    for (let i = 0; i < n; i++) {
      if (this.records[i * FIELDS + P_WRITE_END] === 0) withoutWrite++;
      else kept.push(i * FIELDS);
    }
    const segment = (a: number, b: number): SegmentSummary => {
      const us = kept.map((at) => (this.records[at + b] - this.records[at + a]) / 1000).sort((x, y) => x - y);
      const pick = (q: number): number => (us.length === 0 ? 0 : round(us[Math.min(us.length - 1, Math.floor(q * us.length))]));
      const histogram = new Array<number>(BUCKETS_US.length + 1).fill(0);
      for (const v of us) {
        let k = 0;
        while (k < BUCKETS_US.length && v > BUCKETS_US[k]) k++;
        histogram[k]++;
      }
      return { from: POINTS[a], to: POINTS[b], p50Us: pick(0.5), p90Us: pick(0.9), p99Us: pick(0.99), maxUs: us.length === 0 ? 0 : round(us[us.length - 1]), histogram };
    };
    const segments: SegmentSummary[] = [];
    for (let f = 0; f + 1 < FIELDS; f++) segments.push(segment(f, f + 1));
    return { wakeups: kept.length, withoutWrite, bucketsUs: BUCKETS_US, segments, total: segment(P_POLL, P_WRITE_END) };
  }

  /** Writes `summary()` as JSON to `path`. */
  write(path: string): void {
    writeFileSync(path, `${JSON.stringify(this.summary(), null, 1)}\n`);
  }

  /**
   * A probe when NODEPLANE_LATENCY_FILE names a file to write at the end and the TAP addon
   * has a clock (`null` otherwise, with why in `reason`).
   */
  static fromEnv(clock: Partial<ProbeClock> | null): { probe: LatencyProbe; path: string } | { probe: null; reason: string | null } {
    const path = process.env.NODEPLANE_LATENCY_FILE;
    if (!path) return { probe: null, reason: null };
    if (!clock || typeof clock.nowNs !== 'function' || typeof clock.lastPollNs !== 'function' || typeof clock.lastReadNs !== 'function') {
      return { probe: null, reason: 'the TAP addon has no clock (rebuild it: npx node-gyp rebuild)' };
    }
    return { probe: new LatencyProbe(clock as ProbeClock), path };
  }
}

const round = (v: number): number => Math.round(v * 10) / 10;
