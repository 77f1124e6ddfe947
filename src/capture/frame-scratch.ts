/**
 * Frame scratch: hands a capture writer the bytes of one pool slot without allocating.
 *
 * The writers take a `Buffer` whose length is the captured length. Slicing the pool
 * (`pool.data.subarray(...)`) would allocate a new view object for every packet, so instead
 * the first `caplen` bytes of the frame are copied into one reused buffer, and a view of that
 * exact length is returned from a cache indexed by length (one view per distinct length,
 * created the first time it is seen; at most MAX_FRAME + 1 of them). The copy is a memcpy of
 * at most one slot, the same work the writer then repeats into its block buffer.
 *
 * The returned view is only valid until the next `take` (capture writers copy or write it
 * synchronously, as the sinks' contract already requires).
 */
import type { FramePool } from '../core/frame-pool.ts';
import { MAX_FRAME } from '../core/frame-pool.ts';

export class FrameScratch {
  private buf = Buffer.alloc(MAX_FRAME);
  private views: (Buffer | undefined)[] = [];

  /** Copies min(len, limit) bytes of the slot's frame; returns a view of exactly that many. */
  take(pool: FramePool, slot: number, limit: number): Buffer {
    const len = pool.len[slot];
    const caplen = limit > 0 && len > limit ? limit : len;
    if (caplen > this.buf.length) {
      this.buf = Buffer.alloc(caplen);
      this.views = [];
    }
    const start = pool.start[slot];
    pool.data.copy(this.buf, 0, start, start + caplen);
    let v = this.views[caplen];
    if (v === undefined) {
      v = this.buf.subarray(0, caplen);
      this.views[caplen] = v;
    }
    return v;
  }
}

/** Splits an integral µs timestamp into seconds and nanoseconds (for the writers). */
export function splitUs(us: number, out: { sec: number; nsec: number }): void {
  const t = Math.floor(us);
  const sec = Math.floor(t / 1_000_000);
  out.sec = sec;
  out.nsec = (t - sec * 1_000_000) * 1000;
}

/** What the capture code logs through (pino's Logger fits). */
export interface CaptureLog {
  warn(obj: object, msg: string): void;
}
