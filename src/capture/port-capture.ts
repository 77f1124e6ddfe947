/**
 * PortCapture: the `run --capture DIR` tee (SPEC section 4). A PortObserver that writes what
 * the chosen ports receive and transmit into pcapng, off the packet path: it only reads the
 * slot it is shown and never changes a frame or a decision.
 *
 * in:   onRx(port, pool, slot) for every received frame, onTx for every transmitted one
 * out:  DIR/<prefix>-<stamp>.pcapng, or with rotation DIR/<prefix>-<stamp>-<k>.pcapng
 *
 * File layout: one Section Header Block, then one Interface Description Block per captured
 * port in port order (if_name = port name, LINKTYPE_ETHERNET, the snaplen, µs timestamps),
 * then one Enhanced Packet Block per frame with the direction in epb_flags: inbound for what
 * the port received, outbound for what it transmitted. A frame longer than the snaplen is cut
 * (caplen = snaplen) and keeps its length on the wire (origLen).
 *
 * Names: <stamp> is the start time in UTC, `YYYYMMDDTHHMMSSZ` (sorts by time, no characters a
 * shell or Windows dislikes). If a file of that name already exists in DIR (two runs in the
 * same second) `_2`, `_3`, … is appended to the stamp, so a run never overwrites another's.
 *
 * Rotation, like `tcpdump -C size -W count`: with maxFileBytes the files are numbered
 * `-0`, `-1`, …; before a packet is written that would take the file past maxFileBytes, the
 * file is closed and the next one started, so a file only exceeds the limit when it holds a
 * single packet. With maxFiles W the number wraps after W files and the oldest is overwritten
 * (tcpdump -W), so at most W files exist. Every file starts with the SHB and all IDBs, so each
 * is readable alone. The CLI's `--capture-max-mb N` means N × 1,000,000 bytes, as tcpdump -C.
 *
 * Off the packet path: frames shown are noted (pending-frames.ts) and recorded when the
 * dataplane flushes them, a batch at a time: the filter (`filter`, tcpdump syntax, run by
 * libpcap in one call over the batch; no call at all without a filter) picks them, and the
 * first `snaplen` bytes of each are laid out as an EPB straight into a shared ring, one copy
 * per record and one ring unit per batch (pcapng-epb.ts). A worker thread writes the ring to
 * the file in large writes (capture-ring.ts), pages of whole blocks, so a killed process's
 * file is still readable. Records that find the ring full are not written and counted
 * (`ringDrops`); forwarding never waits for the disk. A failing write (disk full) stops this
 * capture with one log line; the dataplane carries on.
 *
 * Drops (`drops`): an extra interface named `drop` on which every frame a stage drops is
 * recorded as it was when dropped, with an opt_comment naming the stage and the reason
 * (`ip4-forward: ip4.ttl-expired (ttl expired ...)`; Wireshark's frame.comment).
 *
 * With offload on, frames are recorded as they cross the ports: TCP super-frames of up to
 * 64 KiB, as tcpdump on a veth shows GSO packets. A block larger than a page cannot be kept
 * within one, so under SIGKILL only such a last block can be cut.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { DropReason } from '../core/drop-reason.ts';
import type { FramePool } from '../core/frame-pool.ts';
import { EPB_INBOUND, EPB_OUTBOUND, EpbLayout, epbBytes, pagePadding } from '../pcap/pcapng-epb.ts';
import { PcapngWriter } from '../pcap/pcapng-writer.ts';
import type { CaptureSink } from '../pcap/sink.ts';
import type { DropObserver, PortObserver } from '../core/port-contract.ts';
import type { BpfFilter } from './bpf-filter.ts';
import { CaptureRing } from './capture-ring.ts';
import { DropComments } from './drop-comments.ts';
import type { CaptureLog } from './frame-scratch.ts';
import { PendingFrames } from './pending-frames.ts';

export interface PortCaptureOptions {
  /** Directory the files go in (must exist). */
  dir: string;
  /** Name of every port, indexed by port number. */
  portNames: readonly string[];
  /** Port numbers to capture; default all. */
  ports?: readonly number[];
  /** Bytes kept of each frame; default 262144. */
  snaplen?: number;
  /** Start a new file before one would grow past this many bytes; default: one file. */
  maxFileBytes?: number;
  /** With maxFileBytes: keep at most this many files, overwriting the oldest. */
  maxFiles?: number;
  /** Source of packet timestamps (µs since the epoch). */
  clock: { nowUs(): number };
  /** Time in the file names; default now. */
  startTime?: Date;
  /** File name prefix; default "nodeplane". */
  prefix?: string;
  /** Opens a file synchronously (tests); default: files written by a ring's worker thread. */
  openSink?: (path: string) => CaptureSink;
  /** Ring bytes for the worker (default capture-ring.ts's). */
  ringBytes?: number;
  /** Records only frames this filter matches (tcpdump syntax, compiled by libpcap). */
  filter?: BpfFilter | null;
  /** Adds the `drop` interface: every dropped frame, with its stage and reason as comment. */
  drops?: boolean;
  /**
   * The ports use TCP segmentation offload: each port's interface then says so in its
   * if_description (OFFLOAD_DESCRIPTION), which replay --from-capture reads to refuse it.
   */
  offload?: boolean;
  /** Frames pending at most between two flushes: the pool's capacity. */
  capacity?: number;
  log?: CaptureLog;
}

/** A port interface's if_description when the ports use offload (replay refuses such files). */
export const OFFLOAD_DESCRIPTION = 'TCP segmentation offload on: TCP super-frames recorded whole, as they cross the port';

/** `YYYYMMDDTHHMMSSZ` in UTC. */
export function captureStamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

/** Where a batch's blocks are laid out: the ring's memory in place, or a buffer a sink takes. */
interface BlockArea {
  readonly layout: EpbLayout;
  /** After `reserve`: the end of the room found. */
  readonly room: number;
  /** Room for at least `min` bytes from the offset returned; -1 when there is none. */
  reserve(min: number): number;
  /** The `len` bytes laid out from `off` go to the file. */
  commit(off: number, len: number): void;
}

/** A scratch buffer handed to a synchronous sink, one write per batch (tests' openSink). */
class SinkArea implements BlockArea {
  layout = new EpbLayout(Buffer.alloc(65536));
  room = 0;
  sink: CaptureSink | null = null;
  reserve(min: number): number {
    if (this.layout.buf.length < min) this.layout = new EpbLayout(Buffer.alloc(min * 2));
    this.room = this.layout.buf.length;
    return 0;
  }
  commit(off: number, len: number): void {
    this.sink!.write(this.layout.buf.subarray(off, off + len));
  }
}

/** Counts the bytes a header writer hands to the file. */
class CountingSink implements CaptureSink {
  bytes = 0;
  constructor(private readonly inner: CaptureSink) {}
  get position(): number {
    return this.bytes;
  }
  write(b: Buffer): void {
    this.inner.write(b);
    this.bytes += b.length;
  }
  close(): void {
    this.inner.close();
  }
}

export class PortCapture implements PortObserver, DropObserver {
  /** Packets written, over all files. */
  packets = 0;
  /** Frames not written because the ring was full (never blocks forwarding). */
  ringDrops = 0;
  /** Bytes of the writer's ring; 0 when records go straight to a synchronous sink (tests). */
  get ringBytes(): number {
    return this.ring === null ? 0 : this.ring.size;
  }
  /** Dropped frames recorded on the `drop` interface. */
  dropsRecorded = 0;
  /** Files started so far (rotations + 1). */
  fileCount = 0;
  /** Set when a write failed and the capture stopped. */
  error: Error | undefined;

  private readonly ifIds: Int32Array;
  private readonly captured: number[];
  private readonly snaplen: number;
  private readonly base: string;
  private readonly written: string[] = [];
  /** The current file's sink (headers; the blocks too with openSink), or null once closed. */
  private sink: CountingSink | null = null;
  /** Bytes of the current file so far: where the next block lands. */
  private pos = 0;
  private packetsInFile = 0;
  private readonly ring: CaptureRing | null;
  private readonly sinkArea: SinkArea | null;
  private readonly area: BlockArea;
  private readonly pending: PendingFrames;
  private readonly filter: BpfFilter | null;
  private readonly pads = new Int32Array(2);
  /** The `drop` interface's id in the current file, or -1. */
  private dropIf = -1;
  private readonly comments = new DropComments();
  private readonly one = new Int32Array(1);
  private readonly oneDir = new Uint8Array(1);

  constructor(private readonly opts: PortCaptureOptions) {
    const n = opts.portNames.length;
    this.captured = opts.ports ? [...new Set(opts.ports)].sort((a, b) => a - b) : [...Array(n).keys()];
    for (const p of this.captured) {
      if (!Number.isInteger(p) || p < 0 || p >= n) throw new RangeError(`capture: no port ${p}`);
    }
    this.snaplen = opts.snaplen ?? 262144;
    if (!Number.isInteger(this.snaplen) || this.snaplen < 1) {
      throw new RangeError(`capture: snaplen must be a positive integer, got ${this.snaplen}`);
    }
    const m = opts.maxFileBytes;
    if (m !== undefined && !(m > 0)) throw new RangeError(`capture: maxFileBytes must be positive, got ${m}`);
    const w = opts.maxFiles;
    if (w !== undefined && (!Number.isInteger(w) || w < 1)) {
      throw new RangeError(`capture: maxFiles must be a positive integer, got ${w}`);
    }
    if (w !== undefined && m === undefined) throw new RangeError('capture: maxFiles needs maxFileBytes');
    this.ifIds = new Int32Array(n).fill(-1);
    this.filter = opts.filter ?? null;
    this.pending = new PendingFrames(opts.capacity ?? 65536);
    this.ring = opts.openSink ? null : new CaptureRing(opts.ringBytes, (err) => this.fail(new Error(err)));
    this.sinkArea = opts.openSink ? new SinkArea() : null;
    this.area = this.ring ?? this.sinkArea!;
    this.base = this.pickBase(opts.startTime ?? new Date());
    this.startFile();
  }

  /** Paths of the files that exist now, oldest first. */
  files(): string[] {
    return [...this.written];
  }

  onRx(port: number, _pool: FramePool, slot: number): void {
    // Ports added at run time have numbers beyond the file's interfaces: not captured.
    if (port >= this.ifIds.length || this.ifIds[port] < 0) return;
    this.pending.add(port, slot, EPB_INBOUND);
  }

  onTx(port: number, _pool: FramePool, slot: number): void {
    if (port >= this.ifIds.length || this.ifIds[port] < 0) return;
    this.pending.add(port, slot, EPB_OUTBOUND);
  }

  /** Records the frames shown since the last flush (still intact now), filtered as a batch. */
  flush(pool: FramePool): void {
    const p = this.pending;
    const n = p.n;
    if (n === 0) return;
    p.n = 0;
    if (this.sink === null) return;
    if (this.filter !== null && this.filter.matchBatch(pool, p.slots, n, p.verdicts) === 0) return;
    this.record(pool, p.slots, p.ports, p.out, this.filter === null ? null : p.verdicts, n, null);
  }

  /** A stage dropped the frame in `slot`: recorded on `drop` with its stage and reason. */
  onDrop(stage: string, reason: DropReason, pool: FramePool, slot: number): void {
    if (this.dropIf < 0 || this.sink === null) return;
    if (this.filter !== null && !this.filter.matches(pool, slot)) return;
    const comment = this.comments.of(stage, reason);
    this.one[0] = slot;
    const before = this.packets;
    this.record(pool, this.one, null, this.oneDir, null, 1, comment);
    if (this.packets > before) this.dropsRecorded++;
  }

  /** Closes the current file; later frames are ignored. */
  close(): void {
    const s = this.sink;
    this.sink = null;
    this.ifIds.fill(-1);
    this.dropIf = -1;
    s?.close();
    this.ring?.close();
  }

  /**
   * Lays out the records of slots[0..n) (those with verdicts[i] = 1 when verdicts are given)
   * into the block area, a unit at a time, page by page, rotating files as they fill. `ports`
   * null with a comment: the `drop` interface, no direction.
   */
  private record(pool: FramePool, slots: Int32Array, ports: Int32Array | null, dirs: Uint8Array, verdicts: Uint8Array | null, n: number, comment: Buffer | null): void {
    const t = Math.floor(this.opts.clock.nowUs());
    const hi = Math.floor(t / 4294967296);
    const lo = t >>> 0;
    const area = this.area;
    const max = this.opts.maxFileBytes;
    const snaplen = this.snaplen;
    const data = pool.data;
    const clen = comment === null ? 0 : comment.length;
    let layout = area.layout;
    let start = -1;
    let at = 0;
    let room = 0;
    let laid = 0; // records in the unit being laid out, counted once it is handed over
    try {
      for (let i = 0; i < n; i++) {
        if (verdicts !== null && verdicts[i] === 0) continue;
        const slot = slots[i];
        const len = pool.len[slot];
        const caplen = len > snaplen ? snaplen : len;
        const dir = dirs[i];
        const size = epbBytes(caplen, dir !== 0, clen);
        if (max !== undefined && this.packetsInFile > 0 && this.pos + size > max) {
          if (start >= 0) this.commit(start, at, laid);
          start = -1;
          laid = 0;
          this.sink!.close();
          this.startFile();
        }
        const ifId = ports === null ? this.dropIf : this.ifIds[ports[i]];
        const pads = pagePadding(this.pos, size, this.pads);
        const padBytes = pads === 0 ? 0 : pads === 1 ? this.pads[0] : this.pads[0] + this.pads[1];
        if (start < 0 || at + padBytes + size > room) {
          if (start >= 0) this.commit(start, at, laid);
          laid = 0;
          start = at = area.reserve(padBytes + size);
          if (start < 0) {
            this.ringDrops += this.remaining(verdicts, i, n);
            return;
          }
          room = area.room;
          layout = area.layout;
        }
        for (let k = 0; k < pads; k++) {
          layout.pad(at, this.pads[k]);
          at += this.pads[k];
        }
        at += layout.epb(at, ifId, hi, lo, data, pool.start[slot], caplen, len, dir, comment);
        this.pos += padBytes + size;
        this.packetsInFile++;
        laid++;
      }
      if (start >= 0) this.commit(start, at, laid);
    } catch (e) {
      this.fail(e as Error);
    }
  }

  /** Hands the unit laid out from `start` to `end` to the file; `laid` records in it. */
  private commit(start: number, end: number, laid: number): void {
    this.area.commit(start, end - start);
    this.packets += laid;
  }

  /** Records from i on that would have been written. */
  private remaining(verdicts: Uint8Array | null, i: number, n: number): number {
    if (verdicts === null) return n - i;
    let k = 0;
    for (let j = i; j < n; j++) k += verdicts[j];
    return k;
  }

  private fail(e: Error): void {
    this.error = e;
    try {
      this.close();
    } catch {
      // already failing; the first error is the one reported
    }
    this.opts.log?.warn({ err: e.message, files: this.files() }, 'capture stopped: write failed');
  }

  private pathOf(k: number): string {
    const suffix = this.opts.maxFileBytes === undefined ? '' : `-${k}`;
    return join(this.opts.dir, `${this.base}${suffix}.pcapng`);
  }

  private pickBase(start: Date): string {
    const stem = `${this.opts.prefix ?? 'nodeplane'}-${captureStamp(start)}`;
    for (let i = 1; ; i++) {
      const base = i === 1 ? stem : `${stem}_${i}`;
      const first = join(this.opts.dir, `${base}${this.opts.maxFileBytes === undefined ? '' : '-0'}.pcapng`);
      if (!existsSync(first)) return base;
    }
  }

  /** Opens the next file and writes the SHB and one IDB per captured port. */
  private startFile(): void {
    const w = this.opts.maxFiles;
    const k = w === undefined ? this.fileCount : this.fileCount % w;
    const path = this.pathOf(k);
    this.fileCount++;
    const i = this.written.indexOf(path);
    if (i >= 0) this.written.splice(i, 1);
    const file = this.opts.openSink ? this.opts.openSink(path) : this.ring!.open(path);
    if (this.sinkArea !== null) this.sinkArea.sink = file;
    this.sink = new CountingSink(file);
    this.written.push(path);
    // Page-aligned blocks: a SIGKILL can then cut no record in half (see PcapngWriter).
    const writer = new PcapngWriter(this.sink, { pageAligned: true });
    for (const p of this.captured) {
      this.ifIds[p] = writer.addInterface({
        name: this.opts.portNames[p]!,
        snaplen: this.snaplen,
        description: this.opts.offload ? OFFLOAD_DESCRIPTION : undefined,
      });
    }
    if (this.opts.drops) this.dropIf = writer.addInterface({ name: 'drop', snaplen: this.snaplen, description: 'frames the dataplane dropped, reason as comment' });
    // The section header and every interface in one write, now: the file is readable from the start.
    writer.flush();
    this.pos = this.sink.bytes;
    this.packetsInFile = 0;
  }
}
