/**
 * ReplayPort: a port of an offline run. What the dataplane transmits on it is written to a
 * classic pcap (LINKTYPE_ETHERNET) stamped with the virtual time of transmission (SPEC §3),
 * and/or kept in memory as copies (the library API's per-port results). Only offline runs use
 * it, so the per-frame copy is no cost on the live packet path.
 */
import type { Clock } from '../core/clock.ts';
import type { FramePool } from '../core/frame-pool.ts';
import { PcapWriter } from '../pcap/pcap-writer.ts';
import type { CaptureSink } from '../pcap/sink.ts';
import type { PortTransmitter } from '../core/port-contract.ts';

/** A transmitted frame: its virtual time (µs since the epoch) and a copy of its bytes. */
export interface TxRecord {
  tsUs: number;
  bytes: Buffer;
}

export class ReplayPort implements PortTransmitter {
  private readonly writer: PcapWriter | null;
  frames = 0;
  /** With `collect`: every transmitted frame, in order. */
  readonly records: TxRecord[] = [];

  constructor(
    private readonly sink: CaptureSink | null,
    private readonly clock: Clock,
    private readonly opts: { collect?: boolean } = {},
  ) {
    this.writer = sink === null ? null : new PcapWriter(sink, { nanosecond: false });
  }

  transmit(pool: FramePool, slots: Int32Array, n: number): number {
    const us = this.clock.nowUs();
    if (this.writer !== null) {
      const sec = Math.floor(us / 1e6);
      const nsec = (us - sec * 1e6) * 1000;
      for (let i = 0; i < n; i++) this.writer.writeRecord(sec, nsec, pool.view(slots[i]));
    }
    if (this.opts.collect) {
      for (let i = 0; i < n; i++) this.records.push({ tsUs: us, bytes: Buffer.from(pool.view(slots[i])) });
    }
    this.frames += n;
    return n;
  }

  close(): void {
    this.sink?.close();
  }
}
