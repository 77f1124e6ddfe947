/**
 * ReplayPort: a port of an offline run. What the dataplane transmits on it is written to a
 * classic pcap (LINKTYPE_ETHERNET) stamped with the virtual time of transmission (SPEC §3).
 */
import type { Clock } from '../core/clock.ts';
import type { FramePool } from '../core/frame-pool.ts';
import { PcapWriter } from '../pcap/pcap-writer.ts';
import type { CaptureSink } from '../pcap/sink.ts';
import type { PortTransmitter } from '../core/port-contract.ts';

export class ReplayPort implements PortTransmitter {
  private readonly writer: PcapWriter;
  frames = 0;

  constructor(
    private readonly sink: CaptureSink,
    private readonly clock: Clock,
  ) {
    this.writer = new PcapWriter(sink, { nanosecond: false });
  }

  transmit(pool: FramePool, slots: Int32Array, n: number): number {
    const us = this.clock.nowUs();
    const sec = Math.floor(us / 1e6);
    const nsec = (us - sec * 1e6) * 1000;
    for (let i = 0; i < n; i++) this.writer.writeRecord(sec, nsec, pool.view(slots[i]));
    this.frames += n;
    return n;
  }

  close(): void {
    this.sink.close();
  }
}
