/**
 * PendingFrames: the frames a capture was shown since the dataplane last said they are still
 * intact (`PortObserver.flush`: before a dispatch for what ports received, before a driver
 * sends for what a port transmits), so the capture's filter runs over them in one call into
 * libpcap and their records are made in one pass. Typed arrays sized by the pool: nothing is
 * allocated per frame.
 */
import type { FramePool } from '../core/frame-pool.ts';
import type { BpfFilter } from './bpf-filter.ts';

export class PendingFrames {
  n = 0;
  readonly slots: Int32Array;
  readonly ports: Int32Array;
  /** The direction each was seen in, as the capture codes it (pcapng epb_flags: 1 in, 2 out). */
  readonly out: Uint8Array;
  readonly verdicts: Uint8Array;

  constructor(capacity: number) {
    this.slots = new Int32Array(capacity);
    this.ports = new Int32Array(capacity);
    this.out = new Uint8Array(capacity);
    this.verdicts = new Uint8Array(capacity);
  }

  add(port: number, slot: number, out: number): void {
    const i = this.n;
    if (i === this.slots.length) return; // cannot happen: one entry per slot between flushes
    this.slots[i] = slot;
    this.ports[i] = port;
    this.out[i] = out;
    this.n = i + 1;
  }

  /** Runs the filter (if any) over the first n pending frames: verdicts[i] says which to record. */
  select(pool: FramePool, filter: BpfFilter | null, n: number): void {
    if (filter === null) this.verdicts.fill(1, 0, n);
    else filter.matchBatch(pool, this.slots, n, this.verdicts);
  }
}
