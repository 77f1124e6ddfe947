/**
 * CaptureStream: one port's frames, or the frames the stages drop, as a live pcapng byte
 * stream: what the admin socket's `GET /v1/capture` sends, and `nodeplane extcap` hands to
 * Wireshark.
 *
 * in:   onRx / onTx of the chosen port (PortObserver), or onDrop (DropObserver) for `drop`
 * out:  `write(bytes)`: first the header (a Section Header Block and one Interface
 *       Description Block), then one buffer of Enhanced Packet Blocks per batch
 *
 * As in the file capture (port-capture.ts): frames shown are noted and recorded a batch at a
 * time when the dataplane flushes them; a filter (tcpdump syntax, libpcap) runs once over the
 * batch; the first `snaplen` bytes of each are laid out as EPBs (pcapng-epb.ts) straight into
 * one buffer, direction in epb_flags; a dropped frame gets a comment naming the stage and the
 * reason id. No page padding: a stream is not a file a kill can cut.
 *
 * A slow reader never holds forwarding up: while more than `maxQueued` bytes handed to it wait
 * (`queued`), a batch's records are not made at all, only counted (`dropped`).
 */
import type { DropReason } from '../core/drop-reason.ts';
import type { FramePool } from '../core/frame-pool.ts';
import type { DropObserver, PortObserver } from '../core/port-contract.ts';
import { EPB_INBOUND, EPB_OUTBOUND, EpbLayout, epbBytes } from '../pcap/pcapng-epb.ts';
import { PcapngWriter } from '../pcap/pcapng-writer.ts';
import { memorySink } from '../pcap/sink.ts';
import type { BpfFilter } from './bpf-filter.ts';
import { DropComments } from './drop-comments.ts';
import { PendingFrames } from './pending-frames.ts';

/** Bytes queued for a reader beyond which batches are dropped (counted) rather than queued. */
export const DEFAULT_MAX_QUEUED = 4 * 1024 * 1024;

export interface CaptureStreamOptions {
  /** The port whose frames are streamed, or 'drop' for the frames stages drop. */
  port: number | 'drop';
  /** The interface's name in the stream (if_name). */
  name: string;
  /** Its if_description. */
  description?: string;
  /** Bytes kept of each frame. */
  snaplen: number;
  filter: BpfFilter | null;
  clock: { nowUs(): number };
  /** Frames pending at most between two flushes: the pool's capacity. */
  capacity: number;
  /** Hands bytes to the reader (it keeps them). */
  write: (bytes: Buffer) => void;
  /** Bytes handed over that the reader has not taken yet. */
  queued: () => number;
  maxQueued?: number;
  /**
   * Whether the port is still the one streamed (a port removed at run time leaves its number
   * to the next one added); asked once per batch. When it is not, the stream stops and
   * `ended` is called.
   */
  stillOurs?: () => boolean;
  ended?: () => void;
}

export class CaptureStream implements PortObserver, DropObserver {
  /** Records sent to the reader. */
  packets = 0;
  /** Records not made because the reader was too slow. */
  dropped = 0;
  private readonly port: number;
  private readonly pending: PendingFrames;
  private readonly comments = new DropComments();
  private readonly one = new Int32Array(1);
  private readonly maxQueued: number;
  private closed = false;

  constructor(private readonly opts: CaptureStreamOptions) {
    this.port = opts.port === 'drop' ? -1 : opts.port;
    this.pending = new PendingFrames(opts.capacity);
    this.maxQueued = opts.maxQueued ?? DEFAULT_MAX_QUEUED;
    const sink = memorySink();
    const w = new PcapngWriter(sink, { comment: 'nodeplane live capture' });
    w.addInterface({ name: opts.name, snaplen: opts.snaplen, description: opts.description });
    opts.write(sink.bytes());
  }

  /** Stops recording (the reader went away). */
  close(): void {
    this.closed = true;
    this.pending.n = 0;
  }

  onRx(port: number, _pool: FramePool, slot: number): void {
    if (port === this.port) this.pending.add(port, slot, EPB_INBOUND);
  }

  onTx(port: number, _pool: FramePool, slot: number): void {
    if (port === this.port) this.pending.add(port, slot, EPB_OUTBOUND);
  }

  flush(pool: FramePool): void {
    const p = this.pending;
    const n = p.n;
    if (n === 0) return;
    p.n = 0;
    if (this.closed) return;
    if (this.opts.stillOurs !== undefined && !this.opts.stillOurs()) {
      this.close();
      this.opts.ended?.();
      return;
    }
    const filter = this.opts.filter;
    const k = filter === null ? n : filter.matchBatch(pool, p.slots, n, p.verdicts);
    if (k === 0) return;
    this.send(pool, p.slots, p.out, filter === null ? null : p.verdicts, n, k, null);
  }

  onDrop(stage: string, reason: DropReason, pool: FramePool, slot: number): void {
    if (this.port >= 0 || this.closed) return;
    const filter = this.opts.filter;
    if (filter !== null && !filter.matches(pool, slot)) return;
    this.one[0] = slot;
    this.send(pool, this.one, null, null, 1, 1, this.comments.of(stage, reason));
  }

  /** Lays out the k chosen records of slots[0..n) in one buffer and writes it. */
  private send(pool: FramePool, slots: Int32Array, dirs: Uint8Array | null, verdicts: Uint8Array | null, n: number, k: number, comment: Buffer | null): void {
    if (this.opts.queued() > this.maxQueued) {
      this.dropped += k;
      return;
    }
    const snaplen = this.opts.snaplen;
    const clen = comment === null ? 0 : comment.length;
    let total = 0;
    for (let i = 0; i < n; i++) {
      if (verdicts !== null && verdicts[i] === 0) continue;
      const len = pool.len[slots[i]];
      total += epbBytes(len > snaplen ? snaplen : len, dirs !== null, clen);
    }
    const layout = new EpbLayout(Buffer.allocUnsafeSlow(total));
    const t = Math.floor(this.opts.clock.nowUs());
    const hi = Math.floor(t / 4294967296);
    const lo = t >>> 0;
    let at = 0;
    for (let i = 0; i < n; i++) {
      if (verdicts !== null && verdicts[i] === 0) continue;
      const slot = slots[i];
      const len = pool.len[slot];
      at += layout.epb(at, 0, hi, lo, pool.data, pool.start[slot], len > snaplen ? snaplen : len, len, dirs === null ? 0 : dirs[i], comment);
    }
    this.opts.write(layout.buf);
    this.packets += k;
  }
}
